@testable import Store
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class SocketIdentityTests: XCTestCase {
    func testASocketConnectedToItselfIsRecognised() throws {
        // Bind a port, then connect to that same address and port with the same socket:
        // a TCP simultaneous open with itself, as a connection to a port nobody listens on
        // can do when the kernel picks that port as its source.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        XCTAssertFalse(SocketIdentity.isConnectedToItself(fd))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(bound, 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        XCTAssertFalse(SocketIdentity.isConnectedToItself(fd))  // bound, not connected
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0, "self-connect refused: errno \(errno)")
        XCTAssertTrue(SocketIdentity.isConnectedToItself(fd))
    }

    func testAnOrdinaryConnectionIsNotConnectedToItself() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                XCTAssertEqual(bind(listener, $0, length), 0)
                XCTAssertEqual(listen(listener, 1), 0)
                XCTAssertEqual(getsockname(listener, $0, &length), 0)
            }
        }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) }
        }
        XCTAssertEqual(connected, 0)
        XCTAssertFalse(SocketIdentity.isConnectedToItself(client))
        XCTAssertFalse(SocketIdentity.isConnectedToItself(-1))
    }

    func testTheKeyTellsANewSocketWithTheSameNumberApart() {
        let a = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let first = SocketIdentity.key(a)
        close(a)
        let b = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(b) }
        XCTAssertEqual(a, b)  // the lowest free number again
        XCTAssertNotEqual(first, SocketIdentity.key(b))
        XCTAssertEqual(SocketIdentity.key(b), SocketIdentity.key(b))
    }
}
