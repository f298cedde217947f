import Query
import Schema

extension Registry {
    /// Every way this registry and `schema` disagree, one sentence each naming the type and
    /// the field: an object type or a field without a resolver, a resolver (or a type)
    /// the schema does not have, a field resolved twice, a resolver that cannot give what
    /// its field returns. Empty when they agree. `billgraph serve` refuses to start
    /// otherwise, so that no request is ever the first to find a mistake.
    public func mismatches(with schema: Schema) -> [String] {
        var found: [String] = []
        for name in schema.typeOrder where !name.hasPrefix("__") && schema.types[name]?.kind == .object {
            if ObjectType(rawValue: name).flatMap(entry) == nil { found.append("\(name) has no entry in the registry.") }
        }
        var seen: Set<String> = []
        for entry in entries {
            let name = entry.type.rawValue
            guard seen.insert(name).inserted else {
                found.append("\(name) has two entries in the registry.")
                continue
            }
            guard let type = schema.types[name], type.kind == .object else {
                found.append("\(name) is in the registry but is no object type of the schema.")
                continue
            }
            found += mismatches(of: entry, type, schema)
        }
        return found
    }

    private func mismatches(of entry: Entry, _ type: NamedType, _ schema: Schema) -> [String] {
        var found: [String] = []
        var seen: Set<String> = []
        for (name, resolver) in entry.fields {
            let place = "\(type.name).\(name)"
            guard seen.insert(name).inserted else {
                found.append("\(place) is resolved twice.")
                continue
            }
            guard let field = type.fieldsByName[name] else {
                found.append("\(place) is resolved as \(resolver.kind) but the schema has no such field.")
                continue
            }
            if let problem = RegistryCheck(registry: self, schema: schema).problem(resolver, of: entry, for: field) {
                found.append("\(place) cannot be resolved as \(resolver.kind): \(problem).")
            }
        }
        for field in type.fields where !seen.contains(field.name) {
            found.append("\(type.name).\(field.name) has no resolver in the registry.")
        }
        return found
    }
}

/// Whether one resolver can answer one field: what its parent objects are, what it
/// returns (a leaf, an object of a type, a list), and the arguments it reads.
private struct RegistryCheck {
    let registry: Registry
    let schema: Schema

    /// Why `resolver` cannot answer `field` of `entry`'s type; nil when it can.
    func problem(_ resolver: FieldResolver, of entry: Entry, for field: FieldDef) -> String? {
        switch resolver {
        case .column, .sameRow, .byID, .list:
            guard case .rows(let table) = entry.backing else { return "\(entry.type.rawValue) is not a table's rows" }
            return rowProblem(resolver, table, field)
        case .lookup, .connection, .report:
            guard case .queryRoot = entry.backing else { return "only the query root has it" }
            return rootProblem(resolver, field)
        case .figure:
            guard case .report = entry.backing else { return "\(entry.type.rawValue) is not a report" }
            return leaf(field)
        case .connectionPart(let part):
            guard case .connection(let node) = entry.backing else { return "\(entry.type.rawValue) is not a connection" }
            return connectionPartProblem(part, node: node, field)
        case .edgePart(let part):
            guard case .edge(let node) = entry.backing else { return "\(entry.type.rawValue) is not an edge" }
            switch part {
            case .cursor: return leaf(field)
            case .node: return object(field, node)
            }
        case .pageInfoPart:
            guard case .pageInfo = entry.backing else { return "\(entry.type.rawValue) is not page info" }
            return leaf(field)
        case .mutation(let mutation):
            guard case .mutationRoot = entry.backing else { return "only the mutation root has it" }
            return object(field, mutation.payload)
        case .payload(let table, let column):
            guard case .payload = entry.backing else { return "\(entry.type.rawValue) is not a mutation's payload" }
            guard column == 0 || column == 1 else { return "a mutation answers with two ids" }
            return object(field, table.type)
        }
    }

    private func rowProblem(_ resolver: FieldResolver, _ parent: Table, _ field: FieldDef) -> String? {
        switch resolver {
        case .column:
            return leaf(field)
        case .sameRow(let type):
            guard case .rows(let table)? = registry.entry(type)?.backing, table === parent else {
                return "\(type.rawValue) is not the same row"
            }
            return object(field, type)
        case .byID(let table, let key):
            return missing(key, in: parent) ?? object(field, table.type)
        case .list(let query, let key, let filters):
            return missing(key, in: parent) ?? list(field, query.table.type)
                ?? filterProblem(filters, query.table, reading: field.arguments.filter { !["first", "order"].contains($0.name) })
        case .lookup, .connection, .report, .figure, .connectionPart, .edgePart, .pageInfoPart, .mutation, .payload:
            return "it is no field of rows"
        }
    }

    private func rootProblem(_ resolver: FieldResolver, _ field: FieldDef) -> String? {
        switch resolver {
        case .lookup(let lookup):
            guard field.argument(lookup.argument) != nil else { return "it has no argument \(lookup.argument)" }
            return missing(lookup.column, in: lookup.table) ?? object(field, lookup.table.type)
        case .connection(let connection):
            guard let returned = namedType(field), case .connection(let node)? = registry.entry(returned)?.backing,
                  node == connection.table.type, !isList(field) else {
                return "it does not return a connection of \(connection.table.type.rawValue)"
            }
            guard let filter = field.argument("filter").flatMap({ schema.types[$0.type.namedType] }) else {
                return "it has no filter argument"
            }
            return filterProblem(connection.filters, connection.table, reading: filter.inputFields)
        case .report(let report):
            guard let returned = namedType(field), case .report(let answered)? = registry.entry(returned)?.backing,
                  answered == report, isList(field) == report.isList else {
                return "it does not return the report's \(report.isList ? "rows" : "row")"
            }
            return nil
        case .column, .sameRow, .byID, .list, .figure, .connectionPart, .edgePart, .pageInfoPart, .mutation, .payload:
            return "it is no field of the query root"
        }
    }

    private func connectionPartProblem(_ part: ConnectionPart, node: ObjectType, _ field: FieldDef) -> String? {
        switch part {
        case .nodes: return list(field, node)
        case .edges:
            guard let edge = namedType(field), case .edge(let edgeNode)? = registry.entry(edge)?.backing, edgeNode == node,
                  isList(field) else { return "it does not return a list of edges of \(node.rawValue)" }
            return nil
        case .pageInfo: return object(field, .pageInfo)
        case .totalCount: return leaf(field)
        }
    }

    /// Every filter reads an argument (or a field of the filter's input) that exists, on a
    /// column of the table, and every such argument is read by a filter.
    private func filterProblem(_ filters: [Filter], _ table: Table, reading arguments: [InputValueDef]) -> String? {
        let names = Set(arguments.map(\.name))
        if let unknown = filters.first(where: { !names.contains($0.argument) }) { return "no argument \(unknown.argument) to filter by" }
        if let unread = arguments.first(where: { argument in !filters.contains { $0.argument == argument.name } }) {
            return "nothing filters by \(unread.name)"
        }
        return filters.lazy.compactMap { missing($0.test.column, in: table) }.first
    }

    private func missing(_ column: String, in table: Table) -> String? {
        table.index[column] == nil ? "the table of \(table.type.rawValue) has no column \(column)" : nil
    }

    private func leaf(_ field: FieldDef) -> String? {
        guard let type = schema.types[field.type.namedType], type.isLeaf, !isList(field) else { return "it is no scalar or enum" }
        return nil
    }

    private func object(_ field: FieldDef, _ type: ObjectType) -> String? {
        field.type.namedType == type.rawValue && !isList(field) ? nil : "it does not return one \(type.rawValue)"
    }

    private func list(_ field: FieldDef, _ type: ObjectType) -> String? {
        field.type.namedType == type.rawValue && isList(field) ? nil : "it does not return a list of \(type.rawValue)"
    }

    private func namedType(_ field: FieldDef) -> ObjectType? { ObjectType(rawValue: field.type.namedType) }

    private func isList(_ field: FieldDef) -> Bool {
        var type = field.type
        if case .nonNull(let inner, _) = type { type = inner }
        if case .list = type { return true }
        return false
    }
}

private typealias Entry = Registry.Entry
