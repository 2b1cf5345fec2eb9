import Foundation

/// Everything needed to launch one VM's QEMU, as a value. `arguments` turns it into
/// QEMU's argv (without the binary) following guest/README.md's recommended command
/// line: no default devices, no display, no reboot (a reboot or panic ends QEMU),
/// a minimal firmware, PVH kernel boot, no NIC option ROM.
///
/// `arguments` is pure; `adaptedToHost()` applies what depends on this host (qboot
/// present or not, `cache=none` impossible on tmpfs).
public struct QEMUCommand: Sendable, Equatable {
    public enum Accelerator: String, Sendable, Equatable {
        case kvm
        case tcg
    }

    public enum Firmware: Sendable, Equatable {
        /// qboot (`QEMUCommand.qbootPath`) when the file exists, else QEMU's default (SeaBIOS).
        case qbootIfPresent
        /// QEMU's default firmware (SeaBIOS).
        case builtIn
        case path(String)
    }

    public var name: String
    public var uuid: UUID?
    public var cpus: Int
    public var memoryMiB: Int
    public var accelerator: Accelerator
    /// A named model common to all hosts (`qemu64` under TCG), so migration is safe.
    public var cpuModel: String
    public var machine: String
    public var firmware: Firmware
    /// Prefer the uncompressed `vmlinux` (see `preferredKernel(in:)`).
    public var kernel: String
    public var initrd: String?
    public var append: String
    public var disks: [Disk]
    public var nic: NIC?
    /// Unique per QEMU instance (a migration's source and destination need two): `launch`
    /// takes whatever answers on it for this VM's QEMU.
    public var qmpSocket: String
    /// Serial console log, appended to across restarts.
    public var serialLog: String?
    public var pidfile: String?
    /// `tcp:ADDR:PORT`, `defer`, … for a migration destination; nil for a normal start.
    public var incoming: String?
    /// Appended last, verbatim.
    public var extraArguments: [String]

    public static let qbootPath = "/usr/share/qemu/qboot.rom"

    public init(
        name: String, uuid: UUID? = nil, cpus: Int = 1, memoryMiB: Int = 256,
        accelerator: Accelerator = .tcg, cpuModel: String = "qemu64", machine: String = "pc",
        firmware: Firmware = .qbootIfPresent, kernel: String, initrd: String? = nil, append: String = "",
        disks: [Disk] = [], nic: NIC? = nil, qmpSocket: String, serialLog: String? = nil,
        pidfile: String? = nil, incoming: String? = nil, extraArguments: [String] = []
    ) {
        self.name = name
        self.uuid = uuid
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.accelerator = accelerator
        self.cpuModel = cpuModel
        self.machine = machine
        self.firmware = firmware
        self.kernel = kernel
        self.initrd = initrd
        self.append = append
        self.disks = disks
        self.nic = nic
        self.qmpSocket = qmpSocket
        self.serialLog = serialLog
        self.pidfile = pidfile
        self.incoming = incoming
        self.extraArguments = extraArguments
    }

    /// One block device, attached as virtio-blk.
    public struct Disk: Sendable, Equatable {
        public enum Source: Sendable, Equatable {
            case file(String)
            /// An NBD URI (`nbd://HOST:PORT/EXPORT`, `nbd+unix:///EXPORT?socket=PATH`).
            case nbd(String)
        }

        public enum Format: String, Sendable, Equatable {
            /// Always say raw for raw files and NBD, or QEMU refuses writes to block 0.
            case raw
            case qcow2
        }

        public enum Cache: String, Sendable, Equatable {
            /// O_DIRECT on the host; not possible on tmpfs.
            case none
            /// Host page cache; guest flushes still reach the disk (`fdatasync`).
            case writeback
        }

        public var source: Source
        public var format: Format
        public var cache: Cache

        public init(source: Source, format: Format = .raw, cache: Cache = .none) {
            self.source = source
            self.format = format
            self.cache = cache
        }

        public static func file(_ path: String, format: Format = .raw, cache: Cache = .none) -> Disk {
            Disk(source: .file(path), format: format, cache: cache)
        }
    }

    /// One virtio NIC.
    public struct NIC: Sendable, Equatable {
        public enum Backend: Sendable, Equatable {
            /// An existing tap (see `TapDevice`); the bridge is `TapDevice`'s business, not QEMU's.
            case tap(TapDevice)
            /// QEMU user-mode networking with TCP port forwards (tests, no root needed).
            case user(hostForwards: [HostForward])
        }

        public struct HostForward: Sendable, Equatable {
            public var hostAddress: String
            public var hostPort: Int
            public var guestPort: Int
            public init(hostAddress: String = "127.0.0.1", hostPort: Int, guestPort: Int) {
                self.hostAddress = hostAddress
                self.hostPort = hostPort
                self.guestPort = guestPort
            }
        }

        public var backend: Backend
        public var mac: MACAddress
        public var model: String

        public init(backend: Backend, mac: MACAddress, model: String = "virtio-net-pci") {
            self.backend = backend
            self.mac = mac
            self.model = model
        }
    }

    /// QEMU's argv after the binary.
    public var arguments: [String] {
        var a: [String] = ["-name", Self.escape(name)]
        if let uuid { a += ["-uuid", uuid.uuidString.lowercased()] }
        a += [
            "-machine", machine, "-accel", accelerator.rawValue, "-cpu", cpuModel,
            "-smp", String(cpus), "-m", String(memoryMiB),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        ]
        switch firmware {
        case .builtIn: break
        case .path(let path): a += ["-bios", path]
        case .qbootIfPresent:
            if FileManager.default.fileExists(atPath: Self.qbootPath) { a += ["-bios", Self.qbootPath] }
        }
        a += ["-kernel", kernel]
        if let initrd { a += ["-initrd", initrd] }
        if !append.isEmpty { a += ["-append", append] }
        for (index, disk) in disks.enumerated() {
            let file: String
            switch disk.source {
            case .file(let path): file = path
            case .nbd(let uri): file = uri
            }
            a += [
                "-drive",
                "file=\(Self.escape(file)),format=\(disk.format.rawValue),if=none,id=disk\(index),cache=\(disk.cache.rawValue),aio=threads",
                "-device", "virtio-blk-pci,drive=disk\(index)",
            ]
        }
        if let nic {
            switch nic.backend {
            case .tap(let tap):
                a += ["-netdev", "tap,id=net0,ifname=\(tap.name),script=no,downscript=no"]
            case .user(let forwards):
                let fwd = forwards.map { ",hostfwd=tcp:\($0.hostAddress):\($0.hostPort)-:\($0.guestPort)" }.joined()
                a += ["-netdev", "user,id=net0" + fwd]
            }
            a += ["-device", "\(nic.model),netdev=net0,mac=\(nic.mac),romfile="]
        }
        if let serialLog {
            a += ["-chardev", "file,id=ser0,path=\(Self.escape(serialLog)),append=on", "-serial", "chardev:ser0"]
        }
        a += ["-qmp", "unix:\(Self.escape(qmpSocket)),server=on,wait=off"]
        if let pidfile { a += ["-pidfile", pidfile] }
        if let incoming { a += ["-incoming", incoming] }
        return a + extraArguments
    }

    /// This command with what depends on the host resolved: the firmware path decided,
    /// and `cache=none` turned into `writeback` for files on tmpfs (no O_DIRECT there).
    public func adaptedToHost() -> QEMUCommand {
        var copy = self
        if case .qbootIfPresent = firmware {
            copy.firmware = FileManager.default.fileExists(atPath: Self.qbootPath) ? .path(Self.qbootPath) : .builtIn
        }
        for index in copy.disks.indices {
            guard case .file(let path) = copy.disks[index].source, copy.disks[index].cache == .none else { continue }
            if !HostFileSystem.supportsDirectIO(at: path) { copy.disks[index].cache = .writeback }
        }
        return copy
    }

    /// The guest kernel to boot from a guest image directory: `vmlinux` (PVH entry, no
    /// in-guest decompression, ~3 s less CPU under TCG) if present, else `vmlinuz`.
    public static func preferredKernel(in directory: String) -> String? {
        for file in ["vmlinux", "vmlinuz"] {
            let path = (directory as NSString).appendingPathComponent(file)
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        return nil
    }

    /// QEMU option values use `,` as separator; a literal comma is written twice.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: ",", with: ",,")
    }
}
