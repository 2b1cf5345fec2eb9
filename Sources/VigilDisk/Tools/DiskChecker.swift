/// What `vigil disk check` found and, with `--repair`, fixed.
public struct DiskCheckReport: Codable, Sendable, Equatable {
    public var path: String
    public var format: DiskFormat?
    /// No problems left.
    public var ok: Bool { problems.isEmpty }
    public var problems: [String]
    public var repaired: [String]
    /// Problems `--repair` would fix (a pending log, one damaged header or region table copy).
    public var repairable: Bool

    enum CodingKeys: String, CodingKey { case path, format, ok, problems, repaired, repairable }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path)
        try c.encodeIfPresent(format, forKey: .format)
        try c.encode(ok, forKey: .ok)
        try c.encode(problems, forKey: .problems)
        try c.encode(repaired, forKey: .repaired)
        try c.encode(repairable, forKey: .repairable)
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path)
        format = try c.decodeIfPresent(DiskFormat.self, forKey: .format)
        problems = try c.decode([String].self, forKey: .problems)
        repaired = try c.decode([String].self, forKey: .repaired)
        repairable = try c.decode(Bool.self, forKey: .repairable)
    }
    init(path: String, format: DiskFormat?, problems: [String], repaired: [String], repairable: Bool) {
        self.path = path
        self.format = format
        self.problems = problems
        self.repaired = repaired
        self.repairable = repairable
    }
}

/// Checks an image: header CRCs and sequence, region table copies and overlaps,
/// log replayability, metadata consistency, BAT entry states, bounds and overlaps.
/// Repairs only what loses nothing: replaying a valid log, rewriting a damaged header
/// or region table copy from the good one. BAT damage is reported, never "fixed".
public enum DiskChecker {
    public static func check(path: String, format: DiskFormat? = nil, repair: Bool = false) -> DiskCheckReport {
        let fmt: DiskFormat
        do throws(DiskError) { fmt = try resolve(format, path) } catch {
            return DiskCheckReport(path: path, format: format, problems: [error.description], repaired: [], repairable: false)
        }
        guard fmt == .vhdx else {
            return DiskCheckReport(path: path, format: .raw, problems: [], repaired: [], repairable: false)
        }
        do throws(DiskError) {
            let io = try FileIO(path: path, writable: repair)
            var report = try check(io: io, repair: repair)
            report.path = path
            return report
        } catch {
            return DiskCheckReport(path: path, format: .vhdx, problems: [error.description], repaired: [], repairable: false)
        }
    }

    /// Checks the VHDX in `io`; repairs when `repair` is set and `io` is writable.
    public static func check(io: any DiskIO, repair: Bool = false) throws(DiskError) -> DiskCheckReport {
        var image: VHDXImage
        do throws(DiskError) { image = try VHDXImage.load(from: io) } catch {
            return DiskCheckReport(path: "", format: .vhdx, problems: [error.description], repaired: [], repairable: false)
        }
        let fixable = image.redundancyProblems.map(\.description) + (image.replay != nil ? [DiskError.logNeedsReplay.description] : [])
        let fatal = image.batErrors.map(\.description)
        guard repair, !fixable.isEmpty, fatal.isEmpty else {
            return DiskCheckReport(path: "", format: .vhdx, problems: fixable + fatal, repaired: [], repairable: !fixable.isEmpty && fatal.isEmpty)
        }
        var repaired: [String] = []
        let damagedHeader = image.headers.headers.contains { $0 == nil }
        if let replay = image.replay {
            try replay.apply(to: io)
            try image.headers.update({ $0.logGUID = .zero }, io: io)
            repaired.append("replayed \(replay.entries) log entries (through sequence \(replay.headSequence))")
        }
        if damagedHeader {
            // The update protocol writes the non-current slot: the damaged one (unless replay already did).
            if image.headers.headers.contains(where: { $0 == nil }) { try image.headers.update({ _ in }, io: io) }
            repaired.append("rewrote the damaged header from the current one")
        }
        if !image.regions.problems.isEmpty {
            for off in VHDXLayout.regionTableOffsets { try io.write(image.regions.table.encoded(), at: off) }
            try io.sync()
            repaired.append("rewrote both region table copies from the valid one")
        }
        var after = try check(io: io, repair: false)
        after.repaired = repaired
        return after
    }
}
