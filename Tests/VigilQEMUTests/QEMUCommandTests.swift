import Foundation
import Testing

@testable import VigilQEMU

@Suite struct QEMUCommandTests {
    static func recommended() -> QEMUCommand {
        QEMUCommand(
            name: "vm1", uuid: UUID(uuidString: "6C1B1A4E-0F4B-4B7E-9D0B-3A1E2D4C5B6A"),
            cpus: 1, memoryMiB: 256, accelerator: .tcg,
            firmware: .path("/usr/share/qemu/qboot.rom"),
            kernel: "guest/out/vmlinux", initrd: "guest/out/initramfs.cpio.gz",
            append: "console=ttyS0 quiet cryptomgr.notests panic=-1 vigil.ip=10.77.3.100/24 vigil.gw=10.77.3.1 vigil.name=vm1",
            disks: [.file("/var/lib/vigil/disks/vm1.raw")],
            nic: .init(backend: .tap(TapDevice(name: "vm1t0", bridge: "br0")), mac: MACAddress("52:54:00:4d:2a:01")!),
            qmpSocket: "/run/vigil/vm1/qmp.sock", serialLog: "/run/vigil/vm1/serial.log",
            pidfile: "/run/vigil/vm1/qemu.pid")
    }

    @Test func argumentsFollowTheGuestREADMECommandLine() {
        #expect(Self.recommended().arguments == [
            "-name", "vm1",
            "-uuid", "6c1b1a4e-0f4b-4b7e-9d0b-3a1e2d4c5b6a",
            "-machine", "pc", "-accel", "tcg", "-cpu", "qemu64", "-smp", "1", "-m", "256",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-bios", "/usr/share/qemu/qboot.rom",
            "-kernel", "guest/out/vmlinux", "-initrd", "guest/out/initramfs.cpio.gz",
            "-append", "console=ttyS0 quiet cryptomgr.notests panic=-1 vigil.ip=10.77.3.100/24 vigil.gw=10.77.3.1 vigil.name=vm1",
            "-drive", "file=/var/lib/vigil/disks/vm1.raw,format=raw,if=none,id=disk0,cache=none,aio=threads",
            "-device", "virtio-blk-pci,drive=disk0",
            "-netdev", "tap,id=net0,ifname=vm1t0,script=no,downscript=no",
            "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:4d:2a:01,romfile=",
            "-chardev", "file,id=ser0,path=/run/vigil/vm1/serial.log,append=on", "-serial", "chardev:ser0",
            "-qmp", "unix:/run/vigil/vm1/qmp.sock,server=on,wait=off",
            "-pidfile", "/run/vigil/vm1/qemu.pid",
        ])
    }

    @Test func migrationDestinationNBDDiskUserNetAndExtrasAreAppended() {
        var c = Self.recommended()
        c.uuid = nil
        c.accelerator = .kvm
        c.firmware = .builtIn
        c.disks = [QEMUCommand.Disk(source: .nbd("nbd://10.0.0.2:10809/vm1"), cache: .writeback), .file("/d/x,y.qcow2", format: .qcow2)]
        c.nic = .init(backend: .user(hostForwards: [.init(hostPort: 18080, guestPort: 80)]), mac: MACAddress("52:54:00:00:00:01")!)
        c.serialLog = nil
        c.pidfile = nil
        c.incoming = "tcp:127.0.0.1:4444"
        c.extraArguments = ["-S"]
        let a = c.arguments
        #expect(a.contains("-uuid") == false && a.contains("-bios") == false && a.contains("-serial") == false)
        #expect(a[a.firstIndex(of: "-accel")! + 1] == "kvm")
        #expect(a.contains("file=nbd://10.0.0.2:10809/vm1,format=raw,if=none,id=disk0,cache=writeback,aio=threads"))
        #expect(a.contains("file=/d/x,,y.qcow2,format=qcow2,if=none,id=disk1,cache=none,aio=threads"))
        #expect(a.contains("virtio-blk-pci,drive=disk1"))
        #expect(a.contains("user,id=net0,hostfwd=tcp:127.0.0.1:18080-:80"))
        #expect(Array(a.suffix(3)) == ["-incoming", "tcp:127.0.0.1:4444", "-S"])
    }

    @Test func cacheNoneBecomesWritebackOnTmpfsOnly() throws {
        try #require(HostFileSystem.type(at: "/dev/shm") == "tmpfs", "this host has no tmpfs at /dev/shm")
        var c = Self.recommended()
        c.disks = [.file("/dev/shm/vigil-nonexistent/vm1.raw"), .file(FileManager.default.currentDirectoryPath + "/vm1.raw")]
        let adapted = c.adaptedToHost()
        #expect(adapted.disks[0].cache == .writeback)
        #expect(adapted.disks[1].cache == (HostFileSystem.supportsDirectIO(at: FileManager.default.currentDirectoryPath) ? .none : .writeback))
    }

    @Test func mountinfoLongestMountPointWins() {
        let mountinfo = """
            22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
            30 22 0:25 / /dev/shm rw,nosuid - tmpfs tmpfs rw
            31 22 0:26 / /var/lib/vigil\\040disks rw - tmpfs tmpfs rw
            32 31 254:1 / /var/lib/vigil\\040disks/real rw - xfs /dev/vdb rw
            """
        #expect(HostFileSystem.type(at: "/home/x", mountinfo: mountinfo) == "ext4")
        #expect(HostFileSystem.type(at: "/dev/shm/a.raw", mountinfo: mountinfo) == "tmpfs")
        #expect(HostFileSystem.type(at: "/dev/shmx/a.raw", mountinfo: mountinfo) == "ext4")
        #expect(HostFileSystem.type(at: "/var/lib/vigil disks/a.raw", mountinfo: mountinfo) == "tmpfs")
        #expect(HostFileSystem.type(at: "/var/lib/vigil disks/real/a.raw", mountinfo: mountinfo) == "xfs")
    }

    @Test func macIsStablePerVMNameAndLocallyAdministered() {
        let a = MACAddress.stable(forVM: "vm1")
        #expect(a == MACAddress.stable(forVM: "vm1"))
        #expect(a != MACAddress.stable(forVM: "vm2"))
        #expect(a.description.hasPrefix("52:54:00:"))
        #expect(MACAddress(a.description) == a)
        // FNV-1a is fixed: this value must never change, or VMs change MAC on upgrade.
        #expect(MACAddress.stable(forVM: "vm1").description == "52:54:00:" + Self.expectedTail("vm1"))
    }

    static func expectedTail(_ name: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return [h >> 16, h >> 8, h].map { String(format: "%02x", Int($0 & 0xff)) }.joined(separator: ":")
    }

    @Test func tapNamesFitIFNAMSIZAndAreStable() {
        for vm in ["a", "vm1", "a-very-long-virtual-machine-name-indeed"] {
            let name = TapDevice.name(forVM: vm)
            #expect(name.utf8.count == 15 && name.hasPrefix("vt-"))
            #expect(name == TapDevice(forVM: vm).name)
        }
        #expect(TapDevice.name(forVM: "vm1") != TapDevice.name(forVM: "vm2"))
    }

    @Test func vmNameIsReadFromEitherNameSyntax() {
        #expect(QEMUProcess.vmName(inArguments: ["qemu-system-x86_64", "-name", "vm1", "-m", "1"]) == "vm1")
        #expect(QEMUProcess.vmName(inArguments: ["q", "-name", "guest=vm,,2,debug-threads=on"]) == "vm,2")
        #expect(QEMUProcess.vmName(inArguments: ["q", "-m", "1"]) == nil)
    }

    @Test func missingBinaryIsAClearError() {
        do {
            _ = try QEMUBinary.locate(name: "qemu-system-vigil-nonexistent", searchPath: "/nonexistent")
            Issue.record("found a binary that does not exist")
        } catch let error as QEMUError {
            #expect(error.code == .binaryMissing)
            #expect(error.description.contains("QEMU binary missing"))
            #expect(error.description.contains("qemu-system-x86"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
