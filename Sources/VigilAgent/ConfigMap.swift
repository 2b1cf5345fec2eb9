import Foundation

/// A YAML mapping with typed accessors whose errors name the field's full path.
struct ConfigMap {
    var values: [String: Any]
    let path: String

    init?(_ any: Any?, path: String) {
        guard let d = any as? [String: Any] else { return nil }
        values = d; self.path = path
    }

    func field(_ k: String) -> String { path.isEmpty ? k : "\(path).\(k)" }

    func allowOnly(_ keys: Set<String>) throws {
        for k in values.keys.sorted() where !keys.contains(k) {
            throw ConfigError(field: field(k), problem: "unknown field (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    func string(_ k: String) throws -> String {
        guard let v = values[k] else { throw ConfigError(field: field(k), problem: "is required") }
        guard let s = v as? String, !s.isEmpty else { throw ConfigError(field: field(k), problem: "must be a non-empty string") }
        return s
    }

    func optionalString(_ k: String) throws -> String? {
        guard values[k] != nil else { return nil }
        return try string(k)
    }

    func name<T>(_ k: String, _ make: (String) throws -> T) throws -> T {
        let s = try string(k)
        do { return try make(s) } catch { throw ConfigError(field: field(k), problem: "\(error)") }
    }

    func optionalInt(_ k: String) throws -> Int? {
        guard let v = values[k] else { return nil }
        if let i = v as? Int { return i }
        throw ConfigError(field: field(k), problem: "must be an integer, got '\(v)'")
    }

    func optionalDouble(_ k: String) throws -> Double? {
        guard let v = values[k] else { return nil }
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        throw ConfigError(field: field(k), problem: "must be a number, got '\(v)'")
    }

    func optionalBool(_ k: String) throws -> Bool? {
        guard let v = values[k] else { return nil }
        if let b = v as? Bool { return b }
        throw ConfigError(field: field(k), problem: "must be true or false, got '\(v)'")
    }

    func ipv4(_ k: String) throws -> String {
        let s = try string(k)
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else {
            throw ConfigError(field: field(k), problem: "'\(s)' is not an IPv4 address")
        }
        return s
    }

    func strings(_ k: String) throws -> [String] {
        guard let v = values[k] else { throw ConfigError(field: field(k), problem: "is required") }
        guard let a = v as? [Any] else { throw ConfigError(field: field(k), problem: "must be a list") }
        return try a.enumerated().map { i, e in
            guard let s = e as? String else { throw ConfigError(field: "\(field(k))[\(i)]", problem: "must be a string") }
            return s
        }
    }

    func map(_ k: String) throws -> ConfigMap {
        guard let v = values[k] else { throw ConfigError(field: field(k), problem: "is required") }
        guard let m = ConfigMap(v, path: field(k)) else { throw ConfigError(field: field(k), problem: "must be a mapping") }
        return m
    }

    func optionalMap(_ k: String) throws -> ConfigMap? {
        guard values[k] != nil else { return nil }
        return try map(k)
    }

    func list(_ k: String) throws -> [ConfigMap] {
        guard let v = values[k] else { throw ConfigError(field: field(k), problem: "is required") }
        guard let a = v as? [Any] else { throw ConfigError(field: field(k), problem: "must be a list") }
        return try a.enumerated().map { i, e in
            guard let m = ConfigMap(e, path: "\(field(k))[\(i)]") else { throw ConfigError(field: "\(field(k))[\(i)]", problem: "must be a mapping") }
            return m
        }
    }
}
