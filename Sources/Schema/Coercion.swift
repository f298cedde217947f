import JSON
import Query

/// A value that cannot be coerced to its input type.
public struct CoercionError: Error, Sendable {
    public let message: String
    public let locations: [SourceLocation]
}

/// Input coercion (specification section 3, "Input Coercion"): literals and variable
/// values become `JSONValue`s of the right shape. Enum values become strings; `ID`s
/// become strings; absent is `nil`, explicit null is `.null`.
public struct InputCoercion {
    public let schema: Schema
    public init(schema: Schema) { self.schema = schema }

    // MARK: - Variables (from JSON)

    /// CoerceVariableValues: every defined variable, from the request's JSON values.
    public func coerceVariables(_ definitions: [VariableDefinition], values: [(String, JSONValue)]) throws(CoercionError) -> [String: JSONValue] {
        let provided = Dictionary(values, uniquingKeysWith: { a, _ in a })
        var coerced: [String: JSONValue] = [:]
        for def in definitions {
            let name = def.name.value
            if let value = provided[name] {
                if value.isNull, case .nonNull = def.type {
                    throw CoercionError(message: "Variable \"$\(name)\" of non-null type \"\(def.type)\" must not be null.",
                                        locations: [def.location])
                }
                do {
                    coerced[name] = try coerce(json: value, to: def.type)
                } catch let error as InvalidValue {
                    let at = error.path.isEmpty ? "" : " at \"\(name)\(error.path)\""
                    throw CoercionError(message: "Variable \"$\(name)\" got invalid value \(value.serialized)\(at); \(error.reason)",
                                        locations: [def.location])
                } catch {
                    throw CoercionError(message: "Variable \"$\(name)\" got an invalid value.", locations: [def.location])
                }
            } else if let defaultValue = def.defaultValue {
                coerced[name] = try literal(defaultValue, def.type, variables: [:])
            } else if case .nonNull = def.type {
                throw CoercionError(message: "Variable \"$\(name)\" of required type \"\(def.type)\" was not provided.",
                                    locations: [def.location])
            }
        }
        return coerced
    }

    struct InvalidValue: Error {
        var reason: String
        var path = ""
    }

    func coerce(json value: JSONValue, to type: TypeReference) throws -> JSONValue {
        switch type {
        case .nonNull(let inner, _):
            if value.isNull { throw InvalidValue(reason: "Expected non-nullable type \"\(type)\" not to be null.") }
            return try coerce(json: value, to: inner)
        case .list(let inner, _):
            if value.isNull { return .null }
            if case .array(let items) = value {
                return .array(try items.enumerated().map { i, item in
                    do { return try coerce(json: item, to: inner) } catch var e as InvalidValue {
                        e.path = "[\(i)]" + e.path
                        throw e
                    }
                })
            }
            return .array([try coerce(json: value, to: inner)])
        case .named(let name, _):
            if value.isNull { return .null }
            guard let named = schema[name] else { throw InvalidValue(reason: "Unknown type \"\(name)\".") }
            switch named.kind {
            case .scalar: return try scalar(json: value, named)
            case .enumType:
                guard let s = value.stringValue, named.enumValues.contains(where: { $0.name == s }) else {
                    throw InvalidValue(reason: "Value \(value.serialized) does not exist in \"\(name)\" enum.")
                }
                return .string(s)
            case .inputObject: return try inputObject(json: value, named)
            default: throw InvalidValue(reason: "Type \"\(name)\" is not an input type.")
            }
        }
    }

    private func inputObject(json value: JSONValue, _ type: NamedType) throws -> JSONValue {
        guard case .object(let members) = value else {
            throw InvalidValue(reason: "Expected type \"\(type.name)\" to be an object.")
        }
        for (key, _) in members where type.inputFieldsByName[key] == nil {
            throw InvalidValue(reason: "Field \"\(key)\" is not defined by type \"\(type.name)\".")
        }
        var out: [(String, JSONValue)] = []
        for field in type.inputFields {
            if let provided = members.first(where: { $0.0 == field.name })?.1 {
                do { out.append((field.name, try coerce(json: provided, to: field.type))) } catch var e as InvalidValue {
                    e.path = ".\(field.name)" + e.path
                    throw e
                }
            } else if let defaultValue = field.defaultValue, let v = try literal(defaultValue, field.type, variables: [:]) {
                out.append((field.name, v))
            } else if case .nonNull = field.type {
                throw InvalidValue(reason: "Field \"\(field.name)\" of required type \"\(field.type)\" was not provided.")
            }
        }
        return .object(out)
    }

    private func scalar(json value: JSONValue, _ type: NamedType) throws -> JSONValue {
        switch type.name {
        case "Int":
            guard case .number(let text) = value, let n = Self.integerDigits(text).flatMap({ Int64($0) }),
                  n >= Int64(Int32.min), n <= Int64(Int32.max) else {
                throw InvalidValue(reason: "Int cannot represent non 32-bit signed integer value: \(value.serialized)")
            }
            return .number(String(n))
        case "Float":
            guard case .number = value else { throw InvalidValue(reason: "Float cannot represent non numeric value: \(value.serialized)") }
            return value
        case "String":
            guard case .string = value else { throw InvalidValue(reason: "String cannot represent a non string value: \(value.serialized)") }
            return value
        case "Boolean":
            guard case .bool = value else { throw InvalidValue(reason: "Boolean cannot represent a non boolean value: \(value.serialized)") }
            return value
        case "ID":
            if case .string = value { return value }
            if case .number(let text) = value, let digits = Self.integerDigits(text) { return .string(digits) }
            throw InvalidValue(reason: "ID cannot represent value: \(value.serialized)")
        default:
            return try custom(json: value, type.name)
        }
    }

    /// A custom scalar's variable value, read by the hooks its owner gave the schema.
    private func custom(json value: JSONValue, _ name: String) throws -> JSONValue {
        do { return try schema.coercion(ofScalar: name).parseValue(value) } catch {
            throw InvalidValue(reason: error.message)
        }
    }

    /// The decimal digits an `Int` or `ID` variable given as a JSON number stands for, as
    /// graphql-core reads one (GraphQL's ID takes any integer): a number written as an
    /// integer keeps its digits, whatever its size (`9223372036854775808`); one written
    /// with a fraction or an exponent is read as a double, as JSON parsers do, and taken
    /// when that is a finite whole number (`1e20` is `100000000000000000000`, `2.0` is
    /// `2`); nil otherwise (`1.5`, `2e308`).
    static func integerDigits(_ text: String) -> String? {
        if text.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
            return text == "-0" ? "0" : text
        }
        guard let value = Double(text), value.isFinite, value == value.rounded() else { return nil }
        return digits(ofWhole: value)
    }

    /// The exact decimal digits of a whole double (Python's `str(int(value))`): beyond
    /// Int64, its 53-bit significand doubled as many times as its exponent says.
    private static func digits(ofWhole value: Double) -> String {
        if value.magnitude < 9.0e18 { return String(Int64(value)) }
        var digits = Array(String(value.significandBitPattern | (1 << 52)).utf8.reversed().map { $0 - UInt8(ascii: "0") })
        for _ in 0..<(Int(value.exponent) - 52) {
            var carry: UInt8 = 0
            for i in digits.indices {
                let doubled = digits[i] * 2 + carry
                digits[i] = doubled % 10
                carry = doubled / 10
            }
            if carry > 0 { digits.append(carry) }
        }
        return (value < 0 ? "-" : "") + String(decoding: digits.reversed().map { $0 + UInt8(ascii: "0") }, as: UTF8.self)
    }


    // MARK: - Literals (from the document)

    /// ValueFromAST. Throws `CoercionError` when the literal is not a value of the type.
    /// A variable that was not provided yields nil (absent).
    public func literal(_ value: Value, _ type: TypeReference, variables: [String: JSONValue]) throws(CoercionError) -> JSONValue? {
        if case .variable(let name) = value.kind {
            // A variable of a nullable type with a default may stand where a value is
            // required (5.8.5), but an explicit null for it cannot (RULES.md section 5).
            if variables[name] == .null, case .nonNull = type {
                throw CoercionError(message: "Variable \"$\(name)\" is null where a value of type \"\(type)\" is required.",
                                    locations: [value.location])
            }
            return variables[name]
        }
        switch type {
        case .nonNull(let inner, _):
            if case .null = value.kind { throw invalid(value, type) }
            guard let v = try literal(value, inner, variables: variables) else { throw invalid(value, type) }
            if v.isNull { throw invalid(value, type) }
            return v
        case .list(let inner, _):
            if case .null = value.kind { return .null }
            if case .list(let items) = value.kind {
                var out: [JSONValue] = []
                for item in items {
                    let v = try literal(item, inner, variables: variables)
                    if v == nil, case .nonNull = inner { throw invalid(item, inner) }
                    out.append(v ?? .null)
                }
                return .array(out)
            }
            guard let single = try literal(value, inner, variables: variables) else { return nil }
            return .array([single])
        case .named(let name, _):
            if case .null = value.kind { return .null }
            guard let named = schema[name] else { throw invalid(value, type) }
            switch named.kind {
            case .inputObject: return try inputObjectLiteral(value, named, variables: variables)
            case .enumType:
                guard case .enumValue(let v) = value.kind, named.enumValues.contains(where: { $0.name == v }) else {
                    throw invalid(value, type)
                }
                return .string(v)
            case .scalar:
                guard let v = scalarLiteral(value, named, variables: variables) else { throw invalid(value, type) }
                return v
            default:
                throw invalid(value, type)
            }
        }
    }

    private func invalid(_ value: Value, _ type: TypeReference) -> CoercionError {
        CoercionError(message: "Expected value of type \"\(type)\", found \(ValuePrinter.print(value)).", locations: [value.location])
    }

    private func inputObjectLiteral(_ value: Value, _ type: NamedType, variables: [String: JSONValue]) throws(CoercionError) -> JSONValue {
        guard case .object(let fields) = value.kind else {
            throw invalid(value, .named(type.name, value.location))
        }
        var out: [(String, JSONValue)] = []
        for field in fields where type.inputFieldsByName[field.name.value] == nil {
            throw CoercionError(message: "Field \"\(field.name.value)\" is not defined by type \"\(type.name)\".",
                                locations: [field.location])
        }
        for def in type.inputFields {
            let given = fields.first(where: { $0.name.value == def.name })
            var v: JSONValue?
            if let given { v = try literal(given.value, def.type, variables: variables) }
            if v == nil, let defaultValue = def.defaultValue { v = try literal(defaultValue, def.type, variables: [:]) }
            if v == nil, case .nonNull = def.type {
                throw CoercionError(message: "Field \"\(type.name).\(def.name)\" of required type \"\(def.type)\" was not provided.",
                                    locations: [value.location])
            }
            if let v { out.append((def.name, v)) }
        }
        return .object(out)
    }

    private func scalarLiteral(_ value: Value, _ type: NamedType, variables: [String: JSONValue]) -> JSONValue? {
        switch (type.name, value.kind) {
        case ("Int", .int(let text)):
            guard let n = Int32(text) else { return nil }
            return .number(String(n))
        case ("Float", .int(let text)), ("Float", .float(let text)):
            return .number(text)
        case ("String", .string(let s, _)):
            return .string(s)
        case ("Boolean", .boolean(let b)):
            return .bool(b)
        case ("ID", .string(let s, _)), ("ID", .int(let s)):
            return .string(s)
        case ("Int", _), ("Float", _), ("String", _), ("Boolean", _), ("ID", _):
            return nil
        default:
            return try? schema.coercion(ofScalar: type.name).parseLiteral(value, variables)
        }
    }
}

/// Prints a literal back as GraphQL text, for error messages and introspection defaults.
public enum ValuePrinter {
    public static func print(_ value: Value) -> String {
        switch value.kind {
        case .variable(let n): return "$\(n)"
        case .int(let t), .float(let t): return t
        case .string(let s, _): return quote(s)
        case .boolean(let b): return b ? "true" : "false"
        case .null: return "null"
        case .enumValue(let e): return e
        case .list(let items): return "[" + items.map(print).joined(separator: ", ") + "]"
        case .object(let fields):
            return "{" + fields.map { "\($0.name.value): \(print($0.value))" }.joined(separator: ", ") + "}"
        }
    }

    public static func quote(_ s: String) -> String {
        var w = JSONWriter()
        w.string(s)
        return w.string
    }
}
