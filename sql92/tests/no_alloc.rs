//! Evaluating a compiled filter allocates nothing: a counting global
//! allocator (in this test binary only) sees no allocation across many
//! evaluations of `region = 'SH' AND amount > 100`. Counts are per thread, so
//! tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use weir_sql92::{Filter, Truth};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with` fails only while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds the `GlobalAlloc` contract; counting has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's guarantees for `layout` are passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds
        // the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn evaluation_allocates_nothing() {
    let filter = Filter::parse("region = 'SH' AND amount > 100").expect("valid");
    let messages: [&[(&str, &str)]; 4] = [
        &[("region", "SH"), ("amount", "150")],
        &[("region", "BJ"), ("amount", "150")],
        &[("region", "SH"), ("amount", "oops")],
        &[("amount", "700")],
    ];
    let expected = [Ok(Truth::True), Ok(Truth::False), Err(()), Ok(Truth::Null)];

    let before = allocations();
    let mut results = [Ok(Truth::Null); 4];
    for _ in 0..10_000 {
        for (result, message) in results.iter_mut().zip(messages) {
            *result = filter.evaluate(message).map_err(drop);
        }
    }
    let allocations = allocations() - before;

    assert_eq!(results, expected);
    assert_eq!(allocations, 0, "evaluation allocated {allocations} times");
}

#[test]
fn the_counter_sees_allocations() {
    let before = allocations();
    let filter = std::hint::black_box(Filter::parse("a = 'x'").expect("valid"));
    assert!(allocations() > before);
    drop(filter);
}
