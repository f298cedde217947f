@testable import Billing
import Store
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class APIKeysTests: XCTestCase {
    func testOnlyKeysThatCanBeStoredAreWellFormed() {
        XCTAssertTrue(APIKeys.isWellFormed(String(repeating: "k", count: 16)))
        XCTAssertTrue(APIKeys.isWellFormed(String(repeating: "~", count: 128)))
        XCTAssertTrue(APIKeys.isWellFormed("with spaces inside"))
        XCTAssertFalse(APIKeys.isWellFormed(String(repeating: "k", count: 15)))
        XCTAssertFalse(APIKeys.isWellFormed(String(repeating: "k", count: 129)))
        XCTAssertFalse(APIKeys.isWellFormed("sixteen-bytes-é!"))  // 16 bytes, one of them not ASCII
        XCTAssertFalse(APIKeys.isWellFormed("tab\tinside-a-key"))
    }

    func testTheDigestIsSHA256InLowercaseHex() {
        // FIPS 180-2, appendix B.1.
        XCTAssertEqual(APIKeys.digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testKeysAreMadeOfAPrefixANameAndSixteenHexDigitsPerWord() {
        XCTAssertEqual(APIKeys.make(name: "full_org1_", random: [0xff]), "bg_full_org1_00000000000000ff")
        XCTAssertEqual(APIKeys.make(random: [1, UInt64.max]), "bg_0000000000000001ffffffffffffffff")
        let a = APIKeys.generate(), b = APIKeys.generate()
        XCTAssertEqual(a.count, 3 + 64)
        XCTAssertTrue(APIKeys.isWellFormed(a))
        XCTAssertNotEqual(a, b)
    }

    func testScopesAreParsedKnownAndOnce() throws {
        XCTAssertEqual(try APIKeys.parseScopes("billing:read, refunds:write,credit_notes:write"),
                       ["billing:read", "refunds:write", "credit_notes:write"])
        XCTAssertEqual(try APIKeys.parseScopes("refunds:write,refunds:write billing:read"), ["refunds:write", "billing:read"])
        XCTAssertEqual(try APIKeys.parseScopes(""), [])
        XCTAssertThrowsError(try APIKeys.parseScopes("billing:read,admin")) { error in
            XCTAssertEqual("\(error)", "unknown scope admin; use billing:read, refunds:write, credit_notes:write")
        }
    }

    /// The statements against a real PostgreSQL, in a database of their own: a key made
    /// here is found by its digest, listed, and no longer found once revoked; a key the
    /// database hashed itself (as `sha256(convert_to(key, 'UTF8'))`) is found too.
    func testCreateLookUpListAndRevokeAgainstPostgreSQL() throws {
        guard let admin = getenv("BILLGRAPH_TEST_ADMIN_URL").map({ String(cString: $0) }) else {
            if getenv("CI") != nil { return XCTFail("BILLGRAPH_TEST_ADMIN_URL is not set under CI") }
            throw XCTSkip("BILLGRAPH_TEST_ADMIN_URL is not set (scripts/test sets it)")
        }
        let name = "apikeys_test_\(getpid())"
        let server = try BlockingConnection(admin)
        try server.execute("DROP DATABASE IF EXISTS \(name)")
        try server.execute("CREATE DATABASE \(name)")
        defer { try? server.execute("DROP DATABASE \(name) WITH (FORCE)") }
        let db = try BlockingConnection(admin + " dbname=\(name)")
        try Migrator(connection: db).migrate(billingMigrations)
        let organisation = "910a2dec-8902-4cc1-beeb-8da1658eec67"
        _ = try db.query("INSERT INTO organisation (id, name) VALUES ($1, 'Org')", [organisation])

        let key = APIKeys.generate()
        XCTAssertEqual(try db.query(APIKeys.create(organisationID: "8e0f5a52-0000-4000-8000-000000000000", key: key,
                                                   scopes: ["billing:read"], rateLimit: 10)).rowCount, 0, "no such organisation")
        let created = try db.query(APIKeys.create(organisationID: organisation, key: key, scopes: ["billing:read", "refunds:write"],
                                                  label: "ci", rateLimit: 120))
        XCTAssertEqual(created.rowCount, 1)
        let id = try XCTUnwrap(created.string(0, 0))

        let principal = try XCTUnwrap(APIKeys.principal(from: db.query(APIKeys.lookUp(digest: APIKeys.digest(key)))))
        XCTAssertEqual(principal.keyID, id)
        XCTAssertEqual(principal.organisationID, organisation)
        XCTAssertEqual(principal.scopes, ["billing:read", "refunds:write"])
        XCTAssertEqual(principal.rateLimit, 120)
        XCTAssertNil(APIKeys.principal(from: try db.query(APIKeys.lookUp(digest: APIKeys.digest(key + "x")))))

        let listed = try db.query(APIKeys.list(organisationID: organisation))
        XCTAssertEqual(listed.rowCount, 1)
        XCTAssertEqual([listed.string(0, 0), listed.string(0, 1), listed.string(0, 2), listed.string(0, 4), listed.string(0, 5)],
                       [id, "billing:read,refunds:write", "ci", "", "120"])

        XCTAssertEqual(try db.query(APIKeys.revoke(key: key)).string(0, 0), id)
        XCTAssertNil(APIKeys.principal(from: try db.query(APIKeys.lookUp(digest: APIKeys.digest(key)))))
        XCTAssertEqual(try db.query(APIKeys.revoke(id: id)).rowCount, 0, "already revoked")

        let hashedByTheDatabase = "bg_hashed_by_postgresql_1"
        _ = try db.query("INSERT INTO api_key (organisation_id, key_hash, scopes) VALUES ($1, sha256(convert_to($2, 'UTF8')), '{billing:read}')",
                         [organisation, hashedByTheDatabase])
        XCTAssertEqual(APIKeys.principal(from: try db.query(APIKeys.lookUp(digest: APIKeys.digest(hashedByTheDatabase))))?.scopes,
                       ["billing:read"])
    }
}
