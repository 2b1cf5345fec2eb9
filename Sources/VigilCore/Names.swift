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
    /// Natural order ("n2" < "n10") without Foundation.
    func localizedStandardCompare(_ other: String) -> Bool {
        func split(_ s: String) -> (String, Int?) {
            let digits = s.reversed().prefix { $0.isNumber }
            guard !digits.isEmpty else { return (s, nil) }
            return (String(s.dropLast(digits.count)), Int(String(digits.reversed())))
        }
        let (a, an) = split(self), (b, bn) = split(other)
        if a == b, let an, let bn { return an < bn }
        return self < other
    }
}
