//! Data-parallel mapping of the large batches on the request path.
//!
//! A batch call is one task: its conversion and stand-alone checks would run on
//! one core while the writer, waiting for exactly this batch, leaves the other
//! idle. A batch of more than `PART_ITEMS_MIN` items is cut into parts mapped on
//! scoped threads at once (one part per core, at most), so that wait shrinks by
//! the number of cores. Small batches are mapped in place: a thread costs more
//! than it saves there.

/// Below this many items per part, mapping in place is faster.
const PART_ITEMS_MIN: usize = 1024;

/// `items.into_iter().enumerate().map(f).collect()`, in parts on up to one
/// thread per core; `f` gets each item's index in `items`.
pub fn map_indexed<T, U, F>(mut items: Vec<T>, f: F) -> Vec<U>
where
    T: Send,
    U: Send,
    F: Fn(usize, T) -> U + Sync,
{
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = (items.len() / PART_ITEMS_MIN).clamp(1, cores);
    if parts == 1 {
        return items
            .into_iter()
            .enumerate()
            .map(|(i, t)| f(i, t))
            .collect();
    }
    let part_len = items.len().div_ceil(parts);
    // Parts after the first, cut from the end: (index of the first item, items).
    let mut tails = Vec::with_capacity(parts - 1);
    for part in (1..parts).rev() {
        let start = part * part_len;
        if start < items.len() {
            tails.push((start, items.split_off(start)));
        }
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = tails
            .into_iter()
            .rev()
            .map(|(start, part)| {
                scope.spawn(move || {
                    part.into_iter()
                        .enumerate()
                        .map(|(i, t)| f(start + i, t))
                        .collect::<Vec<U>>()
                })
            })
            .collect();
        let mut mapped: Vec<U> = items
            .into_iter()
            .enumerate()
            .map(|(i, t)| f(i, t))
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(part) => mapped.extend(part),
                // `f` panicked on a part: the same panic as mapping in place.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        mapped
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Equal to a plain enumerate-map for every length, including the ones
        /// that split unevenly.
        #[test]
        fn equals_a_plain_map(len in 0usize..5_000) {
            let items: Vec<u64> = (0..len as u64).map(|n| n * 7).collect();
            let expected: Vec<(usize, u64)> = items.iter().copied().enumerate().collect();
            prop_assert_eq!(map_indexed(items, |i, t| (i, t)), expected);
        }
    }
}
