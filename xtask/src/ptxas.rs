//! Reading the ptxas reports (`-Xptxas -v`) that dbrmt-kernels' build.rs saves next to each cubin.

/// The resources ptxas reported for one kernel entry point.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FunctionReport {
    pub name: String,
    pub registers: u64,
    pub barriers: u64,
    pub smem_bytes: u64,
    pub stack_bytes: u64,
    pub spill_store_bytes: u64,
    pub spill_load_bytes: u64,
}

impl FunctionReport {
    pub fn spills(&self) -> bool {
        self.stack_bytes != 0 || self.spill_store_bytes != 0 || self.spill_load_bytes != 0
    }
}

/// Parses a report such as
///
/// ```text
/// ptxas info    : Compiling entry function 'poison_u32' for 'sm_90a'
/// ptxas info    : Function properties for poison_u32
///     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ptxas info    : Used 10 registers, used 0 barriers, 8200 bytes smem
/// ```
///
/// into one entry per compiled entry function (device functions with their own
/// "Function properties" block are folded into nothing: only entries get a "Used" line).
pub fn parse(report: &str) -> Vec<FunctionReport> {
    let mut functions = Vec::new();
    let mut current: Option<FunctionReport> = None;
    let mut properties_of = String::new();
    for line in report.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            if let Some(done) = current.take() {
                functions.push(done);
            }
            let name = rest.split('\'').next().unwrap_or(rest);
            current = Some(FunctionReport {
                name: name.to_owned(),
                ..FunctionReport::default()
            });
        } else if let Some(name) = line.split("Function properties for ").nth(1) {
            properties_of = name.trim().to_owned();
        } else if line.contains("bytes stack frame") {
            if let Some(f) = current.as_mut().filter(|f| f.name == properties_of) {
                for part in line.split(',') {
                    let n = leading_number(part);
                    if part.contains("stack frame") {
                        f.stack_bytes = n;
                    } else if part.contains("spill stores") {
                        f.spill_store_bytes = n;
                    } else if part.contains("spill loads") {
                        f.spill_load_bytes = n;
                    }
                }
            }
        } else if let Some(used) = line.split("Used ").nth(1) {
            if let Some(f) = current.as_mut() {
                for part in used.split(',') {
                    let n = leading_number(part.trim_start().trim_start_matches("used "));
                    if part.contains("registers") {
                        f.registers = n;
                    } else if part.contains("barriers") {
                        f.barriers = n;
                    } else if part.contains("bytes smem") {
                        f.smem_bytes = n;
                    }
                }
            }
        }
    }
    functions.extend(current);
    functions
}

fn leading_number(text: &str) -> u64 {
    text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_with_and_without_smem() {
        let report = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'poison_u32' for 'sm_90a'
ptxas info    : Function properties for poison_u32
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, used 0 barriers
ptxas info    : Compile time = 3.020 ms
ptxas info    : Compiling entry function 'gemm' for 'sm_90a'
ptxas info    : Function properties for gemm
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 168 registers, used 1 barriers, 8200 bytes smem
";
        let fs = parse(report);
        assert_eq!(fs.len(), 2);
        assert_eq!(
            fs[0],
            FunctionReport {
                name: "poison_u32".into(),
                registers: 10,
                ..FunctionReport::default()
            }
        );
        assert!(!fs[0].spills());
        assert_eq!(
            fs[1],
            FunctionReport {
                name: "gemm".into(),
                registers: 168,
                barriers: 1,
                smem_bytes: 8200,
                stack_bytes: 16,
                spill_store_bytes: 8,
                spill_load_bytes: 4,
            }
        );
        assert!(fs[1].spills());
    }
}
