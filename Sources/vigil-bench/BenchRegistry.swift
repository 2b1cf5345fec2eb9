/// The benchmarks `vigil-bench` knows, in the order they run.
enum BenchRegistry {
    static let all: [any Bench] = [VMStartBench(), FailoverBench(), FalseFailoverBench(), MigrationBench(), VHDXBench()]
}
