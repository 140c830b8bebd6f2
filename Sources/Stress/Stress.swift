// `ztrain stress`: see StressHarness.
