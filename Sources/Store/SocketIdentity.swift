#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Facts about a socket libpq owns, read with system calls that do not block.
enum SocketIdentity {
    /// Whether a connected TCP socket is connected to itself: its own address and port are
    /// its peer's. That happens when a connection to a local port nobody listens on picks
    /// that very port as its source (possible when the port lies in the ephemeral range):
    /// the SYN meets itself and the socket connects. Such a socket holds the database's
    /// port, so the database cannot start again until it is closed.
    /// False for sockets not yet connected, Unix-domain sockets and anything unreadable.
    static func isConnectedToItself(_ fd: Int32) -> Bool {
        guard fd >= 0 else { return false }
        guard let local = address(fd, getsockname), let peer = address(fd, getpeername) else { return false }
        return local == peer
    }

    /// The socket's (or its peer's) family, port and address bytes, for TCP over IPv4 or IPv6.
    private static func address(
        _ fd: Int32, _ query: (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?) -> Int32
    ) -> [UInt8]? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { query(fd, $0, &length) == 0 }
        }
        guard ok else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: &storage) { raw in
                let a = raw.load(as: sockaddr_in.self)
                return [UInt8(AF_INET)] + withUnsafeBytes(of: a.sin_port) { Array($0) }
                    + withUnsafeBytes(of: a.sin_addr) { Array($0) }
            }
        case AF_INET6:
            return withUnsafeBytes(of: &storage) { raw in
                let a = raw.load(as: sockaddr_in6.self)
                return [UInt8(AF_INET6)] + withUnsafeBytes(of: a.sin6_port) { Array($0) }
                    + withUnsafeBytes(of: a.sin6_addr) { Array($0) }
            }
        default:
            return nil
        }
    }

    /// Which socket a descriptor is: its number and the kernel's inode for it. libpq may
    /// close its socket and open another while connecting (the next address), and the new
    /// one often gets the same number; a watcher on the old one would then wait for ever.
    struct Key: Equatable {
        let fd: Int32
        let device: UInt64
        let inode: UInt64
    }

    static func key(_ fd: Int32) -> Key {
        var info = stat()
        guard fd >= 0, fstat(fd, &info) == 0 else { return Key(fd: fd, device: 0, inode: 0) }
        return Key(fd: fd, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}
