#if canImport(Glibc)
import Glibc
#endif

/// The watchdog's listening socket, claimed safely: an exclusive `flock` on
/// `<socket>.lock` (held for the process's life) keeps a second watchdog from taking
/// over, and a socket file left by a dead watchdog is removed — but one that still
/// accepts connections is never touched.
struct WatchdogListener {
    let path: String
    let fd: Int32
    private let lockFD: Int32

    /// - Throws: `.alreadyRunning` if another watchdog holds the lock or answers on
    ///   `path`; `.socketFailed` if the socket cannot be made.
    init(path: String, backlog: Int32 = 16) throws {
        self.path = path
        let lockPath = path + ".lock"
        lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else {
            throw WatchdogError(.socketFailed, "cannot open \(lockPath): \(UnixSocket.errorText())")
        }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(lockFD)
            throw WatchdogError(.alreadyRunning, "another vigil-watchdog holds \(lockPath): stop it first (one watchdog per state directory)")
        }
        do {
            try Self.removeStaleSocket(path)
            fd = try UnixSocket.make()
            let bound = try UnixSocket.withAddress(path) { bind(fd, $0, $1) }
            guard bound == 0, listen(fd, backlog) == 0 else {
                let message = "cannot listen on \(path): \(UnixSocket.errorText())"
                Glibc.close(fd)
                throw WatchdogError(.socketFailed, message)
            }
            chmod(path, 0o600)
            UnixSocket.setNonBlocking(fd)
        } catch {
            Glibc.close(lockFD)
            throw error
        }
    }

    /// A socket file nobody accepts on is a dead watchdog's: remove it. Anything else
    /// at `path` (a live watchdog's socket, a regular file) is refused.
    private static func removeStaleSocket(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw WatchdogError(.socketFailed, "\(path) exists and is not a socket: remove it or pass another --socket")
        }
        do {
            let fd = try UnixSocket.connect(path: path, timeout: .milliseconds(200))
            Glibc.close(fd)
            throw WatchdogError(.alreadyRunning, "another vigil-watchdog answers on \(path): stop it first (one watchdog per state directory)")
        } catch let error as WatchdogError where error.code == .notListening || error.code == .socketMissing {
            unlink(path)
        }
    }

    /// Closes and removes the socket (the lock goes with the process): clients then
    /// get `.socketMissing`, a clear "no watchdog" rather than a hang.
    func closeAndUnlink() {
        Glibc.close(fd)
        unlink(path)
        Glibc.close(lockFD)
    }
}
