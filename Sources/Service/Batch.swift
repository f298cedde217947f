import Server
import Store

/// Batches (RULES.md section 8): a POST body that is a JSON array of 1 to 20 request
/// objects is answered with a JSON array of their responses, in the same order, each as if
/// it had been sent alone. The requests run one after another, so a mutation in a batch
/// is its own transaction and sees what the requests before it did.
///
/// An element that is not a request object refuses the whole batch with HTTP 400, before
/// anything of it runs (`RequestParameters`). Otherwise the batch's HTTP answer is 200
/// whatever its elements came to (each element's status would have been for its own
/// answer); `X-Billgraph-Statements` is their sum.
enum Batch {
    typealias Answer = (ClientRequest, @escaping (HTTPResponse) -> Void) -> Void

    static func run(_ requests: [ClientRequest], answer: @escaping Answer, media: MediaType,
                    respond: @escaping (HTTPResponse) -> Void) {
        var responses: [HTTPResponse] = []
        responses.reserveCapacity(requests.count)
        func next() {
            guard responses.count < requests.count else { return respond(combined(responses, media: media)) }
            answer(requests[responses.count]) { response in
                responses.append(response)
                next()
            }
        }
        next()
    }

    private static func combined(_ responses: [HTTPResponse], media: MediaType) -> HTTPResponse {
        var body: [UInt8] = [UInt8(ascii: "[")]
        for (i, response) in responses.enumerated() {
            if i > 0 { body.append(UInt8(ascii: ",")) }
            body += response.body
        }
        body.append(UInt8(ascii: "]"))
        let statements = responses.reduce(0) { $0 + (Int(header("X-Billgraph-Statements", of: $1) ?? "") ?? 0) }
        // The budget after the last element is the batch's.
        let budget = responses.last?.headers.filter { $0.0.hasPrefix("RateLimit-") } ?? []
        // RULES.md section 9: from a replica only when every element's data was; the
        // newest commit position of its mutations, for reading them back.
        let servedBy = responses.allSatisfy { header(GraphQLHandler.servedBy, of: $0) == "replica" } ? "replica" : "primary"
        let commits = responses.compactMap { header("Billgraph-Commit-LSN", of: $0).flatMap(LSN.init) }
        let sources = [(GraphQLHandler.servedBy, servedBy)] + (commits.max().map { [("Billgraph-Commit-LSN", $0.description)] } ?? [])
        return HTTPResponse(status: 200, headers: [("Content-Type", media.contentType), ("X-Billgraph-Statements", String(statements))]
                                + budget + sources,
                            body: body)
    }

    private static func header(_ name: String, of response: HTTPResponse) -> String? {
        response.headers.first { $0.0 == name }?.1
    }
}
