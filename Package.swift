// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "ztrain",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ztrain", targets: ["ztrain"]),
        .library(name: "Support", targets: ["Support"]),
        .library(name: "ZeroMQ", targets: ["ZeroMQ"]),
        .library(name: "RNN", targets: ["RNN"]),
        .library(name: "Series", targets: ["Series"]),
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
        .library(name: "Plot", targets: ["Plot"]),
        .library(name: "Wire", targets: ["Wire"]),
        .library(name: "Transport", targets: ["Transport"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Stress", targets: ["Stress"]),
        .library(name: "Simulation", targets: ["Simulation"]),
        .library(name: "Bench", targets: ["Bench"]),
        .library(name: "Observe", targets: ["Observe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // The C header of libzmq and nothing else (apt: libzmq3-dev).
        .systemLibrary(
            name: "CZeroMQ",
            providers: [.apt(["libzmq3-dev"])]
        ),
        // The CBLAS header of OpenBLAS and nothing else (apt: libopenblas-dev). Not linked: CKernels loads
        // libopenblas.so.0 on first use, so processes training small models never map it.
        .systemLibrary(
            name: "CBLAS",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // Forward/BPTT kernels in C: per-ISA SIMD variants with identical bits, OpenBLAS GEMMs for big shapes.
        // Knows nothing of training. Used by RNN only.
        .target(
            name: "CKernels",
            dependencies: ["CBLAS"],
            linkerSettings: [.linkedLibrary("dl")]
        ),
        // What every process needs and no domain owns: locks, stop flags, wake pipes, process spawning,
        // threads, formatting, small file helpers, large-buffer reuse. Depends on nothing of the package.
        .target(name: "Support"),
        // A small, safe Swift API over libzmq, and nothing else. No training concepts.
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ", "Support"]),
        // Parameters, forward/BPTT, losses, optimizers, clipping, init, canonical reduction. No I/O.
        .target(name: "RNN", dependencies: ["CKernels", .product(name: "RealModule", package: "swift-numerics")]),
        // The sin/cos series, CSV loading, windows, splits, permutations, the plan of a step (StepPlan).
        .target(name: "Series", dependencies: ["Support"]),
        // safetensors read/write, atomic files.
        .target(name: "Checkpoint", dependencies: ["RNN", "Support"]),
        // SVG line charts (loss curves, predictions). No training concepts.
        .target(name: "Plot"),
        // The protocol as plain values and a pure, total binary codec. No sockets.
        .target(name: "Wire", dependencies: ["Support"]),
        // The transport seam: a ROUTER and a DEALER endpoint that own all framing (validation into
        // zero-copy views or decoded messages, the stranger rule, zero-copy ASSIGN sends, rate-limited
        // drop logs, socket options, CURVE) and a poll group. Used by Training, Stress and Bench alike.
        .target(
            name: "Transport",
            dependencies: ["ZeroMQ", "Wire", "Support", .product(name: "Logging", package: "swift-log")]
        ),
        // Training, by concern: Run/ (the run state and its step rule, the configuration, the gradient
        // engine, the in-process trainer), Aggregation/ (the step aggregator and its streaming tree),
        // Cluster/ (the coordinator and worker state machines, their socket loops, the local launcher,
        // cluster launch plans, CURVE keys, the observer protocol), Outputs/ (run folders, checkpoints,
        // progress, predictions, forecasts, the timeline).
        .target(
            name: "Training",
            dependencies: [
                "RNN", "Series", "Checkpoint", "Plot", "ZeroMQ", "Wire", "Transport", "Support",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A simulated network (as NIO's embedded channel): the real coordinator and worker cores, every
        // message through Wire's bytes, a virtual clock, seeded faults (delay, reorder, drop, duplicate, kill).
        .target(name: "Simulation", dependencies: ["Training", "Wire", "Series"]),
        // Watching a run: Prometheus /metrics (own small HTTP responder), TensorBoard event files,
        // per-step metrics lines, the straggler and hang report. Hooks into Training through
        // ``RunObserver``; the training path stays ZeroMQ-only.
        .target(
            name: "Observe",
            dependencies: [
                "Training", "Support",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `ztrain stress`: synthetic workers, exact aggregates, injected faults, latency percentiles.
        .target(
            name: "Stress",
            dependencies: [
                "Training", "RNN", "Wire", "Transport", "ZeroMQ", "Support",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `ztrain bench`: every performance target of issue 5 and its floors (GEMM, memcpy, bare
        // ZeroMQ), in one run; table, JSON and BENCHMARKS.md.
        .target(
            name: "Bench",
            dependencies: [
                // OpenBLAS through CKernels' loader (dlopen on first use; linking it would cost every process ~3 MB)
                "Training", "Stress", "RNN", "CKernels", "Series", "Wire", "ZeroMQ", "Support",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The thin CLI.
        .executableTarget(
            name: "ztrain",
            dependencies: [
                "Training", "Stress", "Bench", "Observe", "RNN", "Series", "Checkpoint", "Plot", "Wire", "ZeroMQ", "Support",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "SupportTests", dependencies: ["Support"]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ", "Support"]),
        .testTarget(name: "RNNTests", dependencies: ["RNN"], exclude: ["Fixtures"]),
        .testTarget(name: "SeriesTests", dependencies: ["Series"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "RNN"]),
        .testTarget(name: "PlotTests", dependencies: ["Plot"]),
        .testTarget(name: "WireTests", dependencies: ["Wire", "Support"]),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "Wire", "ZeroMQ",
                                                         .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Simulation", "RNN", "Series", "Checkpoint", "Wire", "ZeroMQ", "Support",
                                                        .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "StressTests", dependencies: ["Stress", "Training", "RNN", "Wire", "Support"]),
        .testTarget(name: "ObserveTests", dependencies: ["Observe", "Training", "Wire", "Support", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "BenchTests", dependencies: ["Bench", "RNN"]),
        .testTarget(name: "ztrainTests", dependencies: ["ztrain", "RNN", "Series", "Checkpoint", "Support"]),
    ],
    swiftLanguageModes: [.v6]
)
