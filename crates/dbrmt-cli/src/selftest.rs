//! `dbrmt selftest`: the GPU checks as a table.

use anyhow::bail;
use dbrmt_runtime::selftest;

use crate::args::SelftestArgs;

pub fn selftest(a: &SelftestArgs) -> anyhow::Result<()> {
    let seed = a.seed.unwrap_or_else(dbrmt_kernels::check::fresh_seed);
    let fixtures = a.fixtures.clone().or_else(selftest::default_fixtures);
    match &fixtures {
        Some(dir) => println!(
            "selftest: seed {seed} (replay with --seed {seed}); generated cases and the golden cases of {}",
            dir.display()
        ),
        None => println!("selftest: seed {seed} (replay with --seed {seed}); generated cases (no golden files here)"),
    }
    let scope = match (a.small, a.quick) {
        (true, _) => selftest::Scope::Small,
        (false, true) => selftest::Scope::Quick,
        (false, false) => selftest::Scope::Full,
    };
    let checks = selftest::all(fixtures.as_deref(), seed, scope)?;
    for c in &checks {
        println!("{c}");
    }
    let failed = checks.iter().filter(|c| !c.passed()).count();
    println!("{} passed, {} failed", checks.len() - failed, failed);
    if failed > 0 {
        bail!("{failed} of {} checks failed", checks.len());
    }
    Ok(())
}
