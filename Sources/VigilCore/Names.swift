/// A validated name: nodes, clusters, VMs. Lower case, starts with a letter,
/// letters, digits and '-', at most 31 characters — safe in etcd keys, file
/// names, namespace names and interface names.
public enum NameRule {
    public static let maxLength = 31

    /// Returns nil when `raw` is valid, else what is wrong with it.
    public static func problem(with raw: String) -> String? {
        if raw.isEmpty { return "is empty" }
        if raw.count > maxLength { return "is longer than \(maxLength) characters" }
        guard let first = raw.unicodeScalars.first, ("a"..."z").contains(first) else {
            return "must start with a lower-case letter"
        }
        for s in raw.unicodeScalars where !(("a"..."z").contains(s) || ("0"..."9").contains(s) || s == "-") {
            return "contains '\(s)'; use lower-case letters, digits and '-'"
        }
        if raw.hasSuffix("-") { return "must not end with '-'" }
        return nil
    }
}

public struct InvalidName: Error, Equatable, CustomStringConvertible {
    public var kind: String
    public var value: String
    public var problem: String
    public var description: String { "invalid \(kind) name '\(value)': \(problem)" }
}

/// A name checked by `NameRule`, stored as its string, coded as a plain JSON string and
/// ordered naturally ("n2" < "n10"). Node, cluster and VM names share it.
public protocol CheckedName: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    /// What the name names, for error messages ("node", "VM").
    static var kind: String { get }
    var rawValue: String { get }
    /// For values already validated (keys read back from the store).
    init(unchecked raw: String)
}

extension CheckedName {
    public init(_ raw: String) throws {
        if let p = NameRule.problem(with: raw) { throw InvalidName(kind: Self.kind, value: raw, problem: p) }
        self.init(unchecked: raw)
    }
    public var description: String { rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue.localizedStandardCompare(b.rawValue) }
    public init(from decoder: Decoder) throws { try self.init(try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(rawValue) }
}

/// The name of a cluster node (host).
public struct NodeName: CheckedName {
    public static let kind = "node"
    public let rawValue: String
    public init(unchecked raw: String) { rawValue = raw }
}

/// The name of a cluster: the etcd key prefix `/vigil/<cluster>/`.
public struct ClusterName: CheckedName {
    public static let kind = "cluster"
    public let rawValue: String
    public init(unchecked raw: String) { rawValue = raw }
}

extension String {
    /// Natural order ("n2" < "n10") without Foundation: names that differ only in a
    /// trailing number compare by that number, anything else by its characters.
    /// Works on the UTF-8 bytes without allocating: the leader sorts every VM by name on
    /// every round, and a debug build spent most of the simulator's time here.
    func localizedStandardCompare(_ other: String) -> Bool {
        /// The bytes before a trailing run of ASCII digits, and its value (nil: no run,
        /// or too long for an Int — then the plain order decides, as before).
        func split(_ s: String) -> (Substring.UTF8View, Int?) {
            let u = s.utf8
            var i = u.endIndex, value = 0, scale = 1, count = 0
            while i > u.startIndex {
                let j = u.index(before: i)
                let c = u[j]
                guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { break }
                count += 1
                if count > 18 { return (s[...].utf8, nil) }
                value += Int(c - UInt8(ascii: "0")) * scale
                scale *= 10
                i = j
            }
            return count == 0 ? (s[...].utf8, nil) : (s[..<i].utf8, value)
        }
        let (a, an) = split(self), (b, bn) = split(other)
        if let an, let bn, a.elementsEqual(b) { return an < bn }
        return self < other
    }
}
