//! On the CPU model: a prefill in two pieces (the second resumed from the first's state) is bitwise the whole
//! prefill, for every golden case of more than one segment. (The GPU side runs in `dbrmt selftest`.)

use dbrmt_runtime::selftest::{resume_check, GOLDEN_CASES};
use dbrmt_runtime::{Device, Engine, ScheduleKind};

#[test]
fn resumed_prefill_is_bitwise_the_whole_one() {
    let mut checked = 0;
    for case in GOLDEN_CASES {
        let dir = dbrmt_testkit::paths::fixture(case);
        let engine = Engine::load(&dir, &Default::default(), Device::Cpu).unwrap();
        let ids = dbrmt_formats::npy::read_ids(&dir.join("input_ids.npy")).unwrap();
        let whole = engine
            .prefill(&ids, ScheduleKind::Diagonal, dbrmt_model::LogitsMode::All, true)
            .unwrap();
        if let Some(check) = resume_check(&engine, &ids, &whole, case).unwrap() {
            println!("{check}");
            assert!(check.passed(), "{check}");
            checked += 1;
        }
    }
    assert_eq!(checked, 3, "three golden cases have more than one segment");
}
