/// The simulator's only source of randomness: SplitMix64 (Steele, Lea, Flood 2014), a
/// 64-bit state advanced by a constant and mixed. One seed decides every fault, delay and
/// interleaving, so a failing seed replays exactly. Never seeded from the system.
public struct SimRandom: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `0..<n` (the modulo bias is below 2⁻⁵⁰ for the small `n` used here).
    public mutating func below(_ n: Int) -> Int {
        precondition(n > 0, "below(\(n)): the range is empty")
        return Int(next() % UInt64(n))
    }

    public mutating func int(in r: ClosedRange<Int>) -> Int { r.lowerBound + below(r.count) }

    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(UInt64(1) << 53) < p }

    public mutating func millis(_ r: ClosedRange<Int>) -> Duration { .milliseconds(int(in: r)) }

    public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}
