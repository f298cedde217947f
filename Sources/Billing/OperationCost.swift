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

    /// The cost of a plan that the execution at hand will run: `resolution` is that
    /// execution's own (`Execution.resolved`), so each field is resolved once, not twice.
    public static func of(_ plan: OperationPlan, resolution: (PlannedField) -> Resolution?) -> Int {
        max(1, plan.fields.reduce(0) { $0 + cost(of: $1, resolution, isMutation: plan.kind == .mutation) })
    }

    /// The cost of a plan that no execution runs yet (a mutation's run each get their own
    /// transaction's context): resolved here with a context whose statements never run.
    public static func of(_ plan: OperationPlan, organisationID: String, apiKeyID: String, scopes: Set<String>) -> Int {
        let context = RequestContext(organisationID: organisationID, apiKeyID: apiKeyID, scopes: scopes)
        let resolver = BillingResolver(context: context, mutations: nil)
        return of(plan) { try? resolver.resolve($0) }
    }

    /// `isMutation`: a field of the mutation root, which is one mutation.
    private static func cost(of field: PlannedField, _ resolution: (PlannedField) -> Resolution?, isMutation: Bool = false) -> Int {
        // A leaf is read from its parent's row, never loaded: no need to resolve it (asked
        // first: most fields are leaves).
        if !isMutation && field.children.isEmpty { return 0 }
        // Introspection and __typename come from the schema in memory.
        if field.parentType.isIntrospection || field.name.hasPrefix("__") { return 0 }
        // A field refused for its arguments or its scope loads nothing, nor do its
        // children; but the contract counts each mutation field, whatever comes of it.
        if field.argumentError != nil { return isMutation ? mutationField : 0 }
        let own: Int
        if isMutation {
            own = mutationField
        } else {
            guard let resolved = resolution(field) else { return 0 }
            own = statements(of: resolved)
        }
        return field.children.reduce(own) { $0 + cost(of: $1, resolution) }
    }

    private static func statements(of resolution: Resolution) -> Int {
        guard case .load(let load) = resolution else { return 0 }
        if let connection = load as? ConnectionLoad, connection.wantsTotal { return 2 }
        return 1
    }
}
