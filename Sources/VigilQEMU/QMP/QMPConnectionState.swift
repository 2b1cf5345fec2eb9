/// What a QMP connection knows: whether the greeting came, which commands wait for
/// which reply. Pure: the NIO handler carries out the actions it returns, and tests
/// drive it with plain values (`Token` is whatever the caller waits on: a promise in
/// the handler, a string in tests).
///
/// Replies are matched by `id`. QEMU answers in-band commands in order, so a reply
/// without an id (QEMU could not parse the command) goes to the oldest pending one.
struct QMPConnectionState<Token> {
    enum Phase {
        case awaitingGreeting
        case ready
        case closed(QMPError)
    }

    enum SendAction {
        /// Write these bytes; the reply will carry `id`.
        case write([UInt8], id: Int64)
        /// The connection is closed: fail the token right away.
        case fail(QMPError)
    }

    enum ReceiveAction {
        case greeting(QMPGreeting)
        case complete(Token, Result<QMPValue, QMPError>)
        case event(QMPEvent)
        /// The peer broke the protocol: close, then fail everything (`close(with:)`).
        case protocolViolation(QMPError)
    }

    private(set) var phase: Phase = .awaitingGreeting
    private var nextID: Int64 = 1
    /// In send order; few at a time, so a linear search is fine.
    private var pending: [(id: Int64, command: String, token: Token)] = []

    var pendingCount: Int { pending.count }

    mutating func send(_ command: String, arguments: [String: QMPValue]?, token: Token) -> SendAction {
        if case .closed(let error) = phase { return .fail(error.forCommand(command)) }
        let id = nextID
        nextID += 1
        pending.append((id, command, token))
        return .write(QMPCommandEncoder.encode(command, arguments: arguments, id: .int(id)), id: id)
    }

    mutating func receive(_ message: QMPMessage) -> ReceiveAction {
        switch message {
        case .greeting(let greeting):
            guard case .awaitingGreeting = phase else {
                return .protocolViolation(QMPError(.protocolViolation, "second QMP greeting"))
            }
            phase = .ready
            return .greeting(greeting)
        case .event(let event):
            return .event(event)
        case .reply(let id, let result):
            let index: Int?
            if let id {
                index = pending.firstIndex { QMPValue.int($0.id) == id }
            } else {
                index = pending.indices.first
            }
            guard let index else {
                return .protocolViolation(QMPError(.protocolViolation, "reply for unknown id \(id.map { "\($0)" } ?? "none")"))
            }
            let entry = pending.remove(at: index)
            return .complete(entry.token, result.mapError { $0.forCommand(entry.command) })
        }
    }

    /// The connection ended: every pending token fails with `error` (tagged with its command).
    mutating func close(with error: QMPError) -> [(Token, QMPError)] {
        if case .closed = phase { return [] }
        phase = .closed(error)
        let failed = pending.map { ($0.token, error.forCommand($0.command)) }
        pending.removeAll()
        return failed
    }
}
