import JSON
import Query

/// How the values of a custom scalar are read, handed to `Schema(sdl:scalars:)` by
/// whoever owns the scalar, as graphql-js's `GraphQLScalarType` is: the schema knows a
/// custom scalar only by these hooks. A scalar declared without hooks behaves as in
/// graphql-js: a variable's value is taken as it came, and a literal is read as untyped
/// JSON (`ScalarCoercion.untypedLiteral`).
///
/// There is no `serialize` hook: resolvers write leaves in their final form
/// (`Resolution.cell` copies a row's text straight into the response, for every field of
/// every row), so a scalar's output form is the resolver's to keep.
public struct ScalarCoercion: Sendable {
    /// Why a value is not one of the scalar, worded for the client whole (it becomes the
    /// error's message, or its reason after the variable's name).
    public struct Invalid: Error, Sendable {
        public let message: String
        public init(_ message: String) { self.message = message }
    }

    /// A variable's JSON value as the scalar's value (graphql-js `parseValue`); never
    /// called with null.
    public let parseValue: @Sendable (JSONValue) throws(Invalid) -> JSONValue
    /// A literal of the document as the scalar's value (graphql-js `parseLiteral`), given
    /// the request's variables (absent while validating, when only the literal's shape is
    /// judged); never called with a null literal nor a lone variable.
    public let parseLiteral: @Sendable (Value, [String: JSONValue]) throws(Invalid) -> JSONValue

    public init(parseValue: @escaping @Sendable (JSONValue) throws(Invalid) -> JSONValue = { $0 },
                parseLiteral: @escaping @Sendable (Value, [String: JSONValue]) throws(Invalid) -> JSONValue = { untypedLiteral($0, variables: $1) }) {
        self.parseValue = parseValue
        self.parseLiteral = parseLiteral
    }

    /// The hooks of a scalar declared without any: graphql-js's defaults.
    public static let unspecified = ScalarCoercion()

    /// A literal as JSON whatever it is (graphql-js `valueFromASTUntyped`): enum values
    /// become strings, and variables inside lists and objects their values (null when absent).
    public static func untypedLiteral(_ value: Value, variables: [String: JSONValue]) -> JSONValue {
        switch value.kind {
        case .variable(let name): return variables[name] ?? .null
        case .int(let t), .float(let t): return .number(t)
        case .string(let s, _): return .string(s)
        case .boolean(let b): return .bool(b)
        case .null: return .null
        case .enumValue(let e): return .string(e)
        case .list(let items): return .array(items.map { untypedLiteral($0, variables: variables) })
        case .object(let fields): return .object(fields.map { ($0.name.value, untypedLiteral($0.value, variables: variables)) })
        }
    }
}
