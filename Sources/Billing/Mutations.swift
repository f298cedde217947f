import Engine

/// The write side of the contract (RULES.md section 4).
public struct MutationService: MutationResolving {
    public init() {}

    public func resolve(_ field: PlannedField, context: RequestContext) throws(GraphQLError) -> Resolution {
        throw GraphQLError("\(field.name) is not available yet.", code: .internalServerError)
    }
}
