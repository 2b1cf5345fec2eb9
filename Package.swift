// swift-tools-version: 6.0
import PackageDescription

// Layout mirrors ARCHITECTURE.md's processes. VigilCore and VigilDisk touch no
// network; wire and store code sits above them; executables stay thin.
let package = Package(
    name: "Vigil",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vigild", targets: ["vigild"]),
        .executable(name: "vigil", targets: ["vigil"]),
        .executable(name: "vigil-bench", targets: ["vigil-bench"]),
        .executable(name: "vigil-watchdog", targets: ["vigil-watchdog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // Pure models and state machines: no I/O, no wall clock, no randomness.
        .target(name: "VigilCore"),
        // Deterministic simulator: VigilCore's real state machines for many nodes, a model of
        // etcd, fencing and faults, one seed. Used by the tests and the benchmark.
        .target(name: "VigilSim", dependencies: ["VigilCore"]),
        // Virtual disk formats (raw, VHDX): file I/O only, no cluster knowledge.
        .target(name: "VigilDisk"),
        // etcd v3 client over its JSON gateway, sessions, election.
        .target(name: "VigilStore", dependencies: [
            "VigilCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Test hosts on one machine: network namespaces, bridges, etcd and vigild per host, faults.
        .target(name: "VigilLab", dependencies: [
            "VigilCore",
            .product(name: "Yams", package: "Yams"),
        ]),
        // QEMU: command lines, the QMP client, processes (launch, adopt, kill), KVM probe, taps.
        .target(name: "VigilQEMU", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Heartbeat mesh: authenticated UDP heartbeats on every cluster network, link states, route steering (NetFT).
        .target(name: "VigilHeartbeat", dependencies: [
            "VigilCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // The per-host fence: protocol, client (for vigild) and server loop of vigil-watchdog.
        .target(name: "VigilWatchdog", dependencies: [
            "VigilCore", "VigilQEMU",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The node agent's services.
        .target(name: "VigilAgent", dependencies: [
            "VigilCore", "VigilStore", "VigilQEMU", "VigilWatchdog",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // REST API routes (Hummingbird 2).
        .target(name: "VigilAPI", dependencies: [
            "VigilCore", "VigilStore", "VigilAgent",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // What the CLI and tests use to talk to a node's API.
        .target(name: "VigilClient", dependencies: [
            "VigilCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "vigild", dependencies: [
            "VigilCore", "VigilStore", "VigilAgent", "VigilAPI", "VigilQEMU", "VigilHeartbeat",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "vigil-watchdog", dependencies: [
            "VigilWatchdog",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "vigil", dependencies: [
            "VigilCore", "VigilClient", "VigilLab", "VigilDisk",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "vigil-bench", dependencies: [
            "VigilCore", "VigilDisk", "VigilClient", "VigilLab", "VigilQEMU",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Shared test helpers: a real etcd on free loopback ports, built binaries, skips by capability.
        .target(name: "VigilTestKit", dependencies: ["VigilCore"], path: "Tests/VigilTestKit"),
        .testTarget(name: "VigilCoreTests", dependencies: ["VigilCore"]),
        .testTarget(name: "VigilDiskTests", dependencies: ["VigilDisk"]),
        .testTarget(name: "VigilSimTests", dependencies: ["VigilSim"]),
        .testTarget(name: "VigilQEMUTests", dependencies: ["VigilQEMU", "VigilTestKit"]),
        .testTarget(name: "VigilHeartbeatTests", dependencies: ["VigilHeartbeat", "VigilTestKit"]),
        .testTarget(name: "VigilStoreTests", dependencies: ["VigilStore", "VigilTestKit"]),
        .testTarget(name: "VigilWatchdogTests", dependencies: ["VigilWatchdog", "VigilQEMU", "VigilTestKit"]),
        .testTarget(name: "VigilAgentTests", dependencies: ["VigilAgent", "VigilTestKit"]),
        .testTarget(name: "VigilAPITests", dependencies: [
            "VigilAPI", "VigilTestKit",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "VigilLabTests", dependencies: ["VigilLab", "VigilClient", "VigilStore", "VigilWatchdog", "VigilTestKit"]),
    ],
    swiftLanguageModes: [.v6]
)
