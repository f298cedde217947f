import Server

/// GraphiQL's built files, read once when the service starts and shared read-only by
/// every loop. They come from a PyPI wheel that the setup command fetches, pinned by
/// version and SHA-256 (`install_graphiql` in scripts/lib/common.sh), never from a CDN
/// and never from this repository: the IDE works with no internet (RULES.md section 8).
public struct GraphiQLAssets: Sendable {
    struct File: Sendable {
        let contentType: String
        let bytes: [UInt8]
    }

    /// The files the page loads; nothing else of the directory is ever served.
    static let names: [(name: String, contentType: String)] = [
        ("graphiql.min.css", "text/css; charset=utf-8"),
        ("react.production.min.js", "text/javascript; charset=utf-8"),
        ("react-dom.production.min.js", "text/javascript; charset=utf-8"),
        ("graphiql.min.js", "text/javascript; charset=utf-8"),
    ]

    let files: [String: File]

    /// Reads the files from `directory`; a missing one stops the service from starting.
    public init(directory: String) throws {
        var files: [String: File] = [:]
        for (name, contentType) in Self.names {
            guard let bytes = readWholeFile(directory + "/" + name) else {
                throw ServiceError(message: "GraphiQL's file \(name) is not in \(directory) (scripts/run fetches them)")
            }
            files[name] = File(contentType: contentType, bytes: bytes)
        }
        self.files = files
    }
}

/// The IDE for people (RULES.md section 8): `GET /graphql` from a browser (its `Accept`
/// prefers `text/html`) answers GraphiQL's page, and `GET /graphiql/<file>` its files.
/// Neither needs a key; the queries the page sends do, from the key field at its top or
/// from GraphiQL's header editor.
struct GraphiQL {
    /// nil when the service was started without `--graphiql`: the page then says how to get it.
    let assets: GraphiQLAssets?

    static let filePrefix = "/graphiql/"

    /// The answer when the request is for the IDE, nil when it is for GraphQL.
    func answer(_ request: HTTPRequest) -> HTTPResponse? {
        guard request.method == "GET" else { return nil }
        if request.path.hasPrefix(Self.filePrefix) {
            let name = String(request.path.dropFirst(Self.filePrefix.count))
            guard let file = assets?.files[name] else { return html(status: 404, "<p>No such file.</p>") }
            return HTTPResponse(status: 200, headers: [("Content-Type", file.contentType), ("Cache-Control", "public, max-age=3600"),
                                                       ("X-Content-Type-Options", "nosniff")], body: file.bytes)
        }
        guard request.path == "/graphql", Self.prefersHTML(request.header("Accept")) else { return nil }
        guard assets != nil else {
            return html(status: 404, """
                <p>GraphiQL's files are not installed on this server: start it with
                <code>billgraph serve --graphiql DIR</code> (<code>scripts/run</code> fetches them and does).
                GraphQL itself is served here to programs: send <code>Accept: application/json</code>.</p>
                """)
        }
        return html(status: 200, Self.page)
    }

    /// Whether a browser is asking: `text/html` is accepted, and with a higher preference
    /// than any JSON type named outright (`*/*` alone is a program's "anything").
    static func prefersHTML(_ accept: String?) -> Bool {
        guard let accept else { return false }
        var html = 0.0
        var json = 0.0
        for item in accept.split(separator: ",") {
            let parts = item.split(separator: ";").map { String($0).trimmingSpaces.lowercased() }
            var q = 1.0
            for p in parts.dropFirst() where p.hasPrefix("q=") { q = Double(p.dropFirst(2)) ?? 0 }
            switch parts.first {
            case "text/html": html = max(html, q)
            case "application/json", "application/graphql-response+json": json = max(json, q)
            default: break
            }
        }
        return html > 0 && html > json
    }

    private func html(status: Int, _ body: String) -> HTTPResponse {
        let document = body.hasPrefix("<!doctype") ? body : "<!doctype html><meta charset=\"utf-8\"><title>billgraph</title>" + body
        return HTTPResponse(status: status, headers: [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache"),
                                                      ("X-Content-Type-Options", "nosniff")], body: Array(document.utf8))
    }

    /// The page: GraphiQL under a bar with the API key field. The key is kept in the
    /// tab's session storage only, and sent as `Authorization: Bearer`; a header set in
    /// GraphiQL's header editor wins over it. `?query=` opens the page with that document.
    static let page = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>billgraph · GraphiQL</title>
        <style>
          html, body { height: 100%; margin: 0; }
          body { display: flex; flex-direction: column; font-family: system-ui, sans-serif; }
          #bar { display: flex; gap: .5em; align-items: center; padding: .4em .8em; border-bottom: 1px solid #ddd; }
          #bar input { flex: 1; max-width: 40em; font-family: monospace; }
          #graphiql { flex: 1; min-height: 0; }
        </style>
        <link rel="stylesheet" href="/graphiql/graphiql.min.css">
        <script src="/graphiql/react.production.min.js"></script>
        <script src="/graphiql/react-dom.production.min.js"></script>
        <script src="/graphiql/graphiql.min.js"></script>
        </head>
        <body>
        <div id="bar">
          <label for="api-key">API key</label>
          <input id="api-key" type="password" autocomplete="off" placeholder="paste the key that scripts/run printed">
          <span id="key-state"></span>
        </div>
        <div id="graphiql"></div>
        <script>
          const keyField = document.getElementById("api-key");
          keyField.value = sessionStorage.getItem("billgraph-api-key") || "";
          const starter = "# Put your API key in the field above, then run this (Ctrl-Enter).\\n" +
            "{\\n  customers(first: 5) {\\n    nodes { name email currency }\\n  }\\n}\\n";
          const wanted = new URLSearchParams(location.search).get("query");

          function fetcherFor(key) {
            const send = GraphiQL.createFetcher({ url: "/graphql" });
            return (params, options) => send(params, Object.assign({}, options, {
              headers: Object.assign(key ? { Authorization: "Bearer " + key } : {}, (options && options.headers) || {})
            }));
          }

          function render() {
            const key = keyField.value.trim();
            document.getElementById("key-state").textContent = key ? "" : "no key: queries will be refused";
            ReactDOM.render(React.createElement(GraphiQL, {
              fetcher: fetcherFor(key),
              defaultQuery: starter,
              query: wanted || undefined,
              headerEditorEnabled: true,
              shouldPersistHeaders: false,
            }), document.getElementById("graphiql"));
          }

          keyField.addEventListener("change", () => {
            sessionStorage.setItem("billgraph-api-key", keyField.value.trim());
            render();
          });
          render();
        </script>
        </body>
        </html>
        """
}
