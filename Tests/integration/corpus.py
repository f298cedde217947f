"""Documents checked against graphql-core's parse and validate over the contract schema:
valid, invalid and odd ones, with every validation rule of section 5 broken at least once."""

VALID = [
    "{ __typename }",
    "query { customers { totalCount } }",
    "query Q($f: Int = 5, $a: String) { customers(first: $f, after: $a) { nodes { id } } }",
    "query { c: customer(id: \"x\") { ...C } } fragment C on Customer { id name }",
    "{ customers { nodes { ... on Customer { id } ... { name } } } }",
    "query($s: Boolean!) { customers { totalCount @skip(if: $s) pageInfo @include(if: true) { hasNextPage } } }",
    "{ invoices(filter: {status: [OPEN, PAID], issuedFrom: \"2024-01-01\"}) { nodes { id status } } }",
    "{ invoices(filter: {status: OPEN}) { totalCount } }",  # a single value for a list
    "{ a: customers(first: 1) { totalCount } b: customers(first: 2) { totalCount } }",
    "{ customers { totalCount } customers { nodes { id } } }",
    "mutation M($i: RefundPaymentInput!) { refundPayment(input: $i) { refund { id } } }",
    "mutation { createCreditNote(input: {invoiceId: \"x\", amount: 1, reason: \"r\", customData: {a: [1, {b: null}]}}) { invoice { id } } }",
    "{ __schema { types { name } } __type(name: \"Invoice\") { fields { name } } }",
    "# comment only before\n{ customers(first: 1,,,) { totalCount } }",
    "{ customer(id: \"\\u00e9\\u{1F600}\") { id } }",
    "{ customer(id: \"\"\"\n   block\n     string\n\"\"\") { id } }",
    "query ($d: Date = \"2024-02-29\") { arAging(asOf: $d, currency: \"USD\") { total } }",
    "{ monthlySummary(currency: \"EUR\", from: \"2024-01-01\", to: \"2024-12-31\") { month invoiced } }",
    "query A { __typename } query B { __typename }",
    "{ customers { nodes { invoices(first: 1) { payments { refunds { creditNote { invoice { customer { id } } } } } } } } }",
    "{ payments(filter: {hasRefunds: true, status: SUCCEEDED}) { edges { cursor node { id } } } }",
    "query($o: Order = NEWEST_FIRST) { refunds(order: $o) { nodes { id } } }",
    "{ customers(first: 99999999999999999999) { totalCount } }".replace("99999999999999999999", "2147483647"),
    "fragment A on Customer { id } fragment B on Customer { ...A } { customers { nodes { ...B } } }",
    "query($v: [InvoiceStatus!] = [OPEN]) { invoices(filter: {status: $v}) { totalCount } }",
    "{ customers { nodes { id id id } } }",
    "\ufeff{ __typename }",
]

INVALID_SYNTAX = [
    "{ customers { } }",
    "{",
    "query Q($x: Int = $y) { __typename }",
    "{ a(x: \"unterminated }",
    "{ a(x: 01) }",
    "{ a(x: 1.) }",
    "{ a(x: \"\\x\") }",
    "{ a(x: \"\\uD800\") }",
    "fragment on on Customer { id }",
    "{ ...on }",
    "query Q() { __typename }",
    "{ 'single' }",
    "subscription { __typename } }",
    "{ customers(first: 1e) { totalCount } }",
    "\"description\" query { __typename }",
    "{ a(x: [1, 2) }",
    "{ §a }",
    "{ a(x: 1.5.5) }",
]

INVALID = [
    # 5.1.1 executable definitions
    "type T { a: Int } { __typename }",
    "scalar S",
    # 5.2.1.1 operation name uniqueness; 5.2.2.1 lone anonymous operation
    "query A { __typename } query A { __typename }",
    "{ __typename } query B { __typename }",
    # 5.2.3.1 subscriptions (no subscription type)
    "subscription { __typename }",
    # 5.3.1 field selections
    "{ nope }",
    "{ customers { nodes { nope } } }",
    "fragment F on Customer { nope } { customers { nodes { ...F } } }",
    # 5.3.2 field selection merging
    "{ a: customers { totalCount } a: invoices { totalCount } }",
    "{ customers(first: 1) { totalCount } customers(first: 2) { totalCount } }",
    "{ customers { nodes { x: id x: name } } }",
    "{ customers { nodes { id } } customers { nodes { id: name } } }",
    # 5.3.3 leaf selections
    "{ customers }",
    "{ customers { totalCount { a } } }",
    # 5.4.1 argument names; 5.4.2 uniqueness; required arguments
    "{ customers(last: 1) { totalCount } }",
    "{ customers(first: 1, first: 2) { totalCount } }",
    "{ customer { id } }",
    "{ customer(id: null) { id } }",
    "{ __typename @skip }",
    "{ __typename @skip(if: true, unless: false) }",
    # 5.5.1 fragment name uniqueness, spread type existence, on composite types, must be used
    "fragment F on Customer { id } fragment F on Customer { name } { customers { nodes { ...F } } }",
    "fragment F on Nope { id } { customers { nodes { ...F } } }",
    "fragment F on Int { id } { __typename ...F }",
    "{ customers { nodes { ... on Nope { id } } } }",
    "fragment F on Customer { id } { __typename }",
    # 5.5.2 spreads: target defined, no cycles, possible
    "{ ...Missing }",
    "fragment A on Query { ...B } fragment B on Query { ...A } { ...A }",
    "fragment F on Invoice { id } { customers { nodes { ...F } } }",
    "{ customers { nodes { ... on Invoice { id } } } }",
    # 5.6.1 values of correct type; input object fields, uniqueness, required
    "{ customers(first: \"ten\") { totalCount } }",
    "{ customers(first: 2147483648) { totalCount } }",
    "{ customers(order: SIDEWAYS) { totalCount } }",
    "{ customers(order: \"OLDEST_FIRST\") { totalCount } }",
    "{ arAging(asOf: \"2024-13-01\", currency: \"USD\") { total } }",
    "{ arAging(asOf: \"2023-02-29\", currency: \"USD\") { total } }",
    "{ invoices(filter: {nope: 1}) { totalCount } }",
    "{ invoices(filter: {currency: \"USD\", currency: \"EUR\"}) { totalCount } }",
    "mutation { refundPayment(input: {amount: 1}) { refund { id } } }",
    "{ customers(first: 1.5) { totalCount } }",
    "{ invoices(filter: {status: [OPEN, null]}) { totalCount } }",
    # 5.7 directives: defined, valid locations, unique
    "{ __typename @nope }",
    "query @skip(if: true) { __typename }",
    "{ __typename @skip(if: true) @skip(if: false) }",
    # 5.8 variables: unique, input types, all defined, all used, allowed usage
    "query($a: Int, $a: Int) { customers(first: $a) { totalCount } }",
    "query($a: Customer) { __typename }",
    "query($a: Nope) { __typename }",
    "{ customers(first: $undefined) { totalCount } }",
    "query($unused: Int) { __typename }",
    "query($id: String) { customer(id: $id) { id } }",
    "query($n: Int) { customer(id: $n) { id } }",
    "query($s: [InvoiceStatus]) { invoices(filter: {status: $s}) { totalCount } }",
    "query($f: Int = \"x\") { customers(first: $f) { totalCount } }",
    "fragment F on Query { customers(first: $x) { totalCount } } query { ...F }",
]
