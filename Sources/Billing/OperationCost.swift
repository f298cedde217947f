import Engine
import Store

/// What an operation costs (RULES.md section 8), known from its plan before any database
/// work: the statements its plan needs (one per batched load, two for a root connection
/// that also counts its items with `totalCount`, each alias counting), plus
/// `mutationField` for each mutation field, and at least 1.
///
/// The count asks the resolver how each planned field resolves, exactly as the execution
/// will, but runs nothing: a resolution only describes its load until the engine starts it.
/// It is an upper bound of the statements actually sent (`X-Billgraph-Statements`): an
/// identical read asked at two places goes to the database once, and a level whose
/// parents are all null is not loaded.
public enum OperationCost {
    public static let mutationField = 10

    public static func of(_ plan: OperationPlan, organisationID: String, apiKeyID: String, scopes: Set<String>) -> Int {
        // A context whose statements can never run: costing must not touch the database.
        let context = RequestContext(organisationID: organisationID, apiKeyID: apiKeyID, scopes: scopes) { _, completion in
            completion(.failure(.unavailable("costing runs no statement")))
        }
        let resolver = BillingResolver(context: context, mutations: nil)
        return max(1, plan.fields.reduce(0) { $0 + cost(of: $1, resolver, isMutation: plan.kind == .mutation) })
    }

    /// `isMutation`: a field of the mutation root, which is one mutation.
    private static func cost(of field: PlannedField, _ resolver: BillingResolver, isMutation: Bool = false) -> Int {
        // Introspection and __typename come from the schema in memory; a field refused
        // for its arguments or its scope loads nothing, nor do its children.
        if field.name.hasPrefix("__") || field.parentType.name.hasPrefix("__") || field.argumentError != nil { return 0 }
        let own: Int
        if isMutation {
            own = mutationField
        } else if field.children.isEmpty {
            return 0  // a leaf is read from its parent's row, never loaded: no need to resolve it
        } else {
            guard let resolution = try? resolver.resolve(field) else { return 0 }
            own = statements(of: resolution)
        }
        return field.children.reduce(own) { $0 + cost(of: $1, resolver) }
    }

    private static func statements(of resolution: Resolution) -> Int {
        guard case .load(let load) = resolution else { return 0 }
        if let connection = load as? ConnectionLoad, connection.wantsTotal { return 2 }
        return 1
    }
}
