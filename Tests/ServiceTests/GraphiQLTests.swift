@testable import Service
import XCTest

/// Who gets the IDE (RULES.md section 8): browsers, whose `Accept` prefers `text/html`,
/// and never a program that asks for JSON or for anything.
final class GraphiQLTests: XCTestCase {
    func testBrowsersPreferHTML() {
        for accept in ["text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",  // Chromium
                       "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",  // Firefox, Safari
                       "text/html"] {
            XCTAssertTrue(GraphiQL.prefersHTML(accept), accept)
        }
    }

    func testProgramsDoNot() {
        for accept: String? in [nil, "", "*/*", "application/json", "application/graphql-response+json",
                                "application/json, text/html", "text/html;q=0.5, application/json", "text/html;q=0"] {
            XCTAssertFalse(GraphiQL.prefersHTML(accept), accept ?? "nil")
        }
    }
}
