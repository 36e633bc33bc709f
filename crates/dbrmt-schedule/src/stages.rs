//! Pipeline stages: which contiguous run of layers each device holds.

use std::fmt;
use std::ops::Range;

/// Why layers cannot be split into pipeline stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageError {
    /// There is no device to put a stage on.
    NoDevices,
    /// There is no layer to split.
    NoLayers,
    /// Some device would get an empty stage.
    MoreDevicesThanLayers { layers: usize, devices: usize },
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDevices => write!(f, "cannot split layers into stages for 0 devices"),
            Self::NoLayers => write!(f, "cannot split 0 layers into stages"),
            Self::MoreDevicesThanLayers { layers, devices } => write!(
                f,
                "cannot split {layers} layers into {devices} non-empty stages (more devices than layers)"
            ),
        }
    }
}

impl std::error::Error for StageError {}

/// Splits layers `0..layers` into `devices` contiguous, non-empty stages, in order, whose sizes differ by at
/// most one; when they differ, the larger stages come first.
///
/// Errors are checked in the order `devices == 0`, `layers == 0`, `devices > layers`.
///
/// ```
/// use dbrmt_schedule::stages;
///
/// assert_eq!(stages(10, 3).unwrap(), vec![0..4, 4..7, 7..10]);
/// ```
pub fn stages(layers: usize, devices: usize) -> Result<Vec<Range<usize>>, StageError> {
    if devices == 0 {
        return Err(StageError::NoDevices);
    }
    if layers == 0 {
        return Err(StageError::NoLayers);
    }
    if devices > layers {
        return Err(StageError::MoreDevicesThanLayers { layers, devices });
    }
    let (base, larger) = (layers / devices, layers % devices);
    let mut start = 0;
    let ranges = (0..devices)
        .map(|device| {
            let size = base + usize::from(device < larger);
            let range = start..start + size;
            start = range.end;
            range
        })
        .collect();
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_evenly_with_larger_stages_first() {
        let single = stages(1, 1).unwrap();
        assert_eq!((single.len(), single[0].clone()), (1, 0..1));
        assert_eq!(stages(8, 2), Ok(vec![0..4, 4..8]));
        assert_eq!(stages(7, 3), Ok(vec![0..3, 3..5, 5..7]));
        assert_eq!(stages(5, 5), Ok(vec![0..1, 1..2, 2..3, 3..4, 4..5]));
    }

    #[test]
    fn rejects_bad_inputs() {
        assert_eq!(stages(4, 0), Err(StageError::NoDevices));
        assert_eq!(stages(0, 0), Err(StageError::NoDevices));
        assert_eq!(stages(0, 2), Err(StageError::NoLayers));
        assert_eq!(
            stages(3, 4),
            Err(StageError::MoreDevicesThanLayers { layers: 3, devices: 4 })
        );
    }

    #[test]
    fn errors_read_as_sentences() {
        let error: Box<dyn std::error::Error> = Box::new(StageError::MoreDevicesThanLayers { layers: 3, devices: 4 });
        assert_eq!(
            error.to_string(),
            "cannot split 3 layers into 4 non-empty stages (more devices than layers)"
        );
    }
}
