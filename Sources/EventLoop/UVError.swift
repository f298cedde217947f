import CLibUV

/// A libuv error code with libuv's own words for it.
public struct UVError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }
    public var description: String { "\(operation): \(String(cString: uv_strerror(code)))" }
}

/// The one place where libuv return codes become Swift errors.
@discardableResult
public func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(UVError) -> Int32 {
    if code < 0 { throw UVError(code: code, operation: operation()) }
    return code
}
