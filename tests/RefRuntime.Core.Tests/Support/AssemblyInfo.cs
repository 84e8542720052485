using Xunit;

// Refcount warning counters and the warning handler are process-wide: tests that assert on
// warning deltas must not interleave with tests that provoke warnings.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
