/// Writes metadata updates through the log (spec 2.3): each update becomes one entry
/// written at the head of the circular log and made durable before its pages are
/// written in place. The tail stays at the oldest entry whose in-place writes may not
/// be durable yet, and moves to the head on every `sync`.
///
/// Order per update: entry written durably (that write alone, not the user data written
/// before it), then pages written in place (not synced). A crash anywhere leaves either
/// no valid entry (old metadata, intact) or a durable entry that replay on the next open
/// applies, extending the file to the entry's LastFileOffset if the extension was lost.
struct VHDXLogWriter {
    let logOffset: UInt64
    let logLength: UInt64
    let guid: VHDXGUID
    var head: UInt64
    var tail: UInt64
    var sequence: UInt64
    /// File size as of the last completed sync: every byte below it is durable.
    var syncedFileSize: UInt64

    static let sector = UInt64(VHDXLogEntry.sectorSize)

    init(header: VHDXHeader, syncedFileSize: UInt64, sequence: UInt64 = 1, head: UInt64 = 0) {
        self.syncedFileSize = syncedFileSize
        logOffset = header.logOffset
        logLength = UInt64(header.logLength)
        guid = header.logGUID
        self.head = head
        tail = head
        self.sequence = max(sequence, 1)
    }

    /// Most data pages one entry can carry in this log, keeping one sector open.
    var maxPagesPerEntry: Int {
        let sectors = Int(logLength / Self.sector) - 1
        var p = sectors - 1
        while p > 0 && VHDXLogEntry.descriptorSectors(p) + p > sectors { p -= 1 }
        return max(p, 0)
    }

    private var used: UInt64 { (head + logLength - tail) % logLength }

    /// Logs `pages` durably, then writes them in place. `fileSize` is the file's size
    /// now, after any extension this update depends on. The entry may reach the disk
    /// before that extension does, so it records both the last synced size
    /// (FlushedFileOffset) and this one (LastFileOffset, which replay extends to).
    mutating func commit(pages: [VHDXLogEntry.Page], fileSize: UInt64, io: any DiskIO) throws(DiskError) {
        precondition(!pages.isEmpty && pages.count <= maxPagesPerEntry, "split updates to fit the log")
        var entry = VHDXLogEntry(sequenceNumber: sequence, tail: UInt32(tail), logGUID: guid,
                                 flushedFileOffset: syncedFileSize, lastFileOffset: fileSize, pages: pages)
        let length = UInt64(entry.sectorCount) * Self.sector
        if used + length + Self.sector > logLength {
            // Not enough room: make earlier in-place writes durable, then the log is empty.
            try io.sync()
            tail = head
            syncedFileSize = fileSize
            entry.tail = UInt32(tail)
        }
        let bytes = entry.encoded()
        let firstPart = min(length, logLength - head)
        try typed { try bytes.withUnsafeBytes { b in
            try io.writeDurably(UnsafeRawBufferPointer(rebasing: b[0..<Int(firstPart)]), at: logOffset + head)
            if firstPart < length {
                try io.writeDurably(UnsafeRawBufferPointer(rebasing: b[Int(firstPart)...]), at: logOffset)
            }
        } }
        head = (head + length) % logLength
        sequence += 1
        for p in pages { try io.write(p.data, at: p.fileOffset) }
    }

    /// Called after the file was synced: every entry so far is applied and durable.
    mutating func markSynced(fileSize: UInt64) {
        tail = head
        syncedFileSize = fileSize
    }
}
