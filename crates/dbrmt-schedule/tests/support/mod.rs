//! Checkers for schedules, written from the dependency rule alone (no scheduler code reused), so that a
//! scheduler bug cannot hide behind the same bug in its checker.

use std::collections::{BTreeMap, BTreeSet};

use dbrmt_schedule::Schedule;

/// A cell of one request: `(request, layer, segment)`.
pub type Key = (usize, usize, usize);

/// The cells a cell waits for: the layer below in the same segment, and the same layer in the previous
/// segment, both of the same request.
pub fn dependencies((request, layer, segment): Key) -> Vec<Key> {
    let mut deps = Vec::new();
    if layer > 0 {
        deps.push((request, layer - 1, segment));
    }
    if segment > 0 {
        deps.push((request, layer, segment - 1));
    }
    deps
}

/// Every cell of request `r`: `layers` × `segments[r]`.
pub fn all_cells(layers: usize, segments: &[usize]) -> BTreeSet<Key> {
    let mut cells = BTreeSet::new();
    for (request, &n) in segments.iter().enumerate() {
        for layer in 0..layers {
            for segment in 0..n {
                cells.insert((request, layer, segment));
            }
        }
    }
    cells
}

/// The tasks of each step, as keys, in the order the schedule lists them.
pub fn keys(schedule: &Schedule) -> Vec<Vec<Key>> {
    schedule
        .steps
        .iter()
        .map(|step| {
            step.tasks
                .iter()
                .map(|t| (t.request, t.cell.layer, t.cell.segment))
                .collect()
        })
        .collect()
}

/// The step of each cell; fails if a cell appears twice.
pub fn step_of(schedule: &Schedule) -> Result<BTreeMap<Key, usize>, String> {
    let mut at = BTreeMap::new();
    for (step, tasks) in keys(schedule).into_iter().enumerate() {
        for key in tasks {
            if let Some(first) = at.insert(key, step) {
                return Err(format!("{key:?} runs in step {first} and again in step {step}"));
            }
        }
    }
    Ok(at)
}

/// Every cell of every request appears exactly once, and nothing else appears.
pub fn check_each_cell_once(schedule: &Schedule, layers: usize, segments: &[usize]) -> Result<(), String> {
    let scheduled: BTreeSet<Key> = step_of(schedule)?.into_keys().collect();
    let expected = all_cells(layers, segments);
    if let Some(missing) = expected.difference(&scheduled).next() {
        return Err(format!("{missing:?} never runs"));
    }
    if let Some(extra) = scheduled.difference(&expected).next() {
        return Err(format!("{extra:?} is not a cell of the grid"));
    }
    Ok(())
}

/// Each cell runs in a strictly later step than each of its dependencies.
pub fn check_dependencies_earlier(schedule: &Schedule) -> Result<(), String> {
    let at = step_of(schedule)?;
    for (&key, &step) in &at {
        for dep in dependencies(key) {
            match at.get(&dep) {
                Some(&dep_step) if dep_step < step => {}
                Some(&dep_step) => {
                    return Err(format!(
                        "{key:?} in step {step} but its dependency {dep:?} in step {dep_step}"
                    ))
                }
                None => return Err(format!("{key:?} runs but its dependency {dep:?} never does")),
            }
        }
    }
    Ok(())
}

/// No step holds two cells of the same layer (one slot per layer).
pub fn check_one_cell_per_layer(schedule: &Schedule) -> Result<(), String> {
    for (step, tasks) in keys(schedule).iter().enumerate() {
        let mut layers = BTreeSet::new();
        for &(_, layer, _) in tasks {
            if !layers.insert(layer) {
                return Err(format!("step {step} runs layer {layer} twice: {tasks:?}"));
            }
        }
    }
    Ok(())
}

/// No cell of a step depends on another cell of the same step.
pub fn check_step_independent(schedule: &Schedule) -> Result<(), String> {
    for (step, tasks) in keys(schedule).iter().enumerate() {
        for &a in tasks {
            for &b in tasks {
                if dependencies(a).contains(&b) {
                    return Err(format!("step {step}: {a:?} depends on {b:?} in the same step"));
                }
            }
        }
    }
    Ok(())
}

/// Tasks of a step come in ascending layer order.
pub fn check_layers_ascending(schedule: &Schedule) -> Result<(), String> {
    for (step, tasks) in keys(schedule).iter().enumerate() {
        if !tasks.windows(2).all(|w| w[0].1 < w[1].1) {
            return Err(format!("step {step} is not in ascending layer order: {tasks:?}"));
        }
    }
    Ok(())
}

/// For every step and layer, the cells of that layer (any request) that could run: not complete before the
/// step, and every dependency complete before the step. Calls `visit(step, layer, ready, chosen)` where
/// `chosen` is what the schedule actually ran in that slot.
fn for_each_slot(
    schedule: &Schedule,
    layers: usize,
    segments: &[usize],
    mut visit: impl FnMut(usize, usize, &[Key], Option<Key>) -> Result<(), String>,
) -> Result<(), String> {
    let mut cells_of_layer = vec![Vec::new(); layers];
    for key in all_cells(layers, segments) {
        cells_of_layer[key.1].push(key);
    }
    let mut done = BTreeSet::new();
    for (step, tasks) in keys(schedule).iter().enumerate() {
        for (layer, cells) in cells_of_layer.iter().enumerate() {
            let ready: Vec<Key> = cells
                .iter()
                .copied()
                .filter(|key| !done.contains(key))
                .filter(|&key| dependencies(key).iter().all(|d| done.contains(d)))
                .collect();
            let chosen = tasks.iter().copied().find(|&(_, l, _)| l == layer);
            visit(step, layer, &ready, chosen)?;
        }
        done.extend(tasks.iter().copied());
    }
    Ok(())
}

/// A layer slot with no task in a step had no ready cell in that step.
pub fn check_never_idles_ready_slot(schedule: &Schedule, layers: usize, segments: &[usize]) -> Result<(), String> {
    for_each_slot(schedule, layers, segments, |step, layer, ready, chosen| {
        match (chosen, ready.first()) {
            (None, Some(waiting)) => Err(format!(
                "step {step} leaves layer {layer} idle while {waiting:?} is ready"
            )),
            _ => Ok(()),
        }
    })
}

/// A busy layer slot runs a ready cell, and among the ready cells one of the lowest request index.
pub fn check_fifo_choice(schedule: &Schedule, layers: usize, segments: &[usize]) -> Result<(), String> {
    for_each_slot(schedule, layers, segments, |step, layer, ready, chosen| {
        let Some(chosen) = chosen else { return Ok(()) };
        if !ready.contains(&chosen) {
            return Err(format!("step {step} runs {chosen:?}, which is not ready"));
        }
        let lowest = ready.iter().map(|&(r, _, _)| r).min();
        if lowest != Some(chosen.0) {
            return Err(format!(
                "step {step}, layer {layer}: runs request {} while request {lowest:?} is ready",
                chosen.0
            ));
        }
        Ok(())
    })
}
