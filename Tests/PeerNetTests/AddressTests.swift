import NIOCore
import PeerNet
import Testing

@Suite("Addresses")
struct AddressTests {
    @Test("IPv4 and IPv6 literals parse and print as RFC 5952 writes them")
    func literals() throws {
        #expect(try IPAddress(parsing: "192.0.2.1").description == "192.0.2.1")
        #expect(try IPAddress(parsing: "192.0.2.1").v4 == 0xC000_0201)
        #expect(
            try IPAddress(parsing: "2001:0db8:0000:0000:0000:0000:0000:0001").description == "2001:db8::1")
        #expect(try IPAddress(parsing: "::1") == .loopbackV6)
        #expect(try IPAddress(parsing: "::").isUnspecified)
        #expect(try IPAddress(parsing: "fe80::1:2").bytes.count == 16)
        #expect(try IPAddress(parsing: "1::").description == "1::")
    }

    @Test("an IPv4-mapped IPv6 address is the IPv4 address")
    func mapped() throws {
        let mapped = try IPAddress(parsing: "::ffff:10.1.2.3")
        #expect(!mapped.isIPv6)
        #expect(mapped == (try IPAddress(parsing: "10.1.2.3")))
        #expect(mapped.description == "10.1.2.3")
        #expect(
            IPAddress(bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4]) == IPAddress("1.2.3.4"))
        #expect(IPAddress("1.2.3.4")?.mappedBytes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4])
        // The same through a NIO socket address, as a dual-stack listener reports it.
        let socket = try SocketAddress(ipAddress: "::ffff:127.0.0.1", port: 6881)
        #expect(Endpoint(socket) == Endpoint("127.0.0.1:6881"))
    }

    @Test("bad literals give errors that name what was wrong")
    func badLiterals() {
        #expect(throws: AddressError.empty) { try IPAddress(parsing: "") }
        #expect(throws: AddressError.invalidIPv4("256.1.1.1")) { try IPAddress(parsing: "256.1.1.1") }
        #expect(throws: AddressError.invalidIPv4("1.2.3")) { try IPAddress(parsing: "1.2.3") }
        #expect(throws: AddressError.invalidIPv4("01.2.3.4")) { try IPAddress(parsing: "01.2.3.4") }
        #expect(throws: AddressError.invalidIPv6("1:::2")) { try IPAddress(parsing: "1:::2") }
        #expect(throws: AddressError.invalidIPv6("fe80::1%eth0")) { try IPAddress(parsing: "fe80::1%eth0") }
        #expect(throws: AddressError.notAnAddress("example.com")) { try IPAddress(parsing: "example.com") }
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
    }

    @Test("endpoints: host:port, [v6]:port and bare addresses with a default port")
    func endpoints() throws {
        let v4 = try Endpoint(parsing: "127.0.0.1:6881")
        #expect(v4.ip == .loopbackV4 && v4.port == 6881)
        #expect(v4.description == "127.0.0.1:6881")
        let v6 = try Endpoint(parsing: "[2001:db8::1]:51413")
        #expect(v6.isIPv6 && v6.port == 51413)
        #expect(v6.description == "[2001:db8::1]:51413")
        #expect(try Endpoint(parsing: "10.0.0.1", defaultPort: 8333).port == 8333)
        #expect(try Endpoint(parsing: "::1", defaultPort: 8333) == Endpoint(ip: .loopbackV6, port: 8333))
        #expect(try Endpoint(parsing: "[::1]", defaultPort: 8333) == Endpoint(ip: .loopbackV6, port: 8333))
        #expect(try Endpoint(parsing: "[::ffff:1.2.3.4]:80") == Endpoint(parsing: "1.2.3.4:80"))
    }

    @Test("bad endpoints are refused with the reason")
    func badEndpoints() {
        #expect(throws: AddressError.missingPort("127.0.0.1")) { try Endpoint(parsing: "127.0.0.1") }
        #expect(throws: AddressError.invalidPort("65536")) { try Endpoint(parsing: "127.0.0.1:65536") }
        #expect(throws: AddressError.invalidPort("")) { try Endpoint(parsing: "127.0.0.1:") }
        #expect(throws: AddressError.invalidPort("+80")) { try Endpoint(parsing: "127.0.0.1:+80") }
        #expect(throws: AddressError.badBrackets("[::1")) { try Endpoint(parsing: "[::1") }
        #expect(throws: AddressError.badBrackets("[::1]80")) { try Endpoint(parsing: "[::1]80") }
        #expect(throws: AddressError.unbracketedIPv6("::1:80")) { try Endpoint(parsing: "::1:80") }
        #expect(throws: AddressError.invalidIPv6("1.2.3.4")) { try Endpoint(parsing: "[1.2.3.4]:80") }
        #expect(throws: AddressError.notAnAddress("localhost")) { try Endpoint(parsing: "localhost:80") }
        #expect(throws: AddressError.empty) { try Endpoint(parsing: ":80") }
    }

    @Test("host names parse as HostPort, literals resolve without DNS")
    func hostPort() async throws {
        let named = try HostPort(parsing: "router.example.org:6881")
        #expect(named.host == "router.example.org" && named.port == 6881 && named.endpoint == nil)
        #expect(try HostPort(parsing: "[::1]:6881").endpoint == Endpoint(ip: .loopbackV6, port: 6881))
        #expect(throws: AddressError.invalidHostName("bad host")) { try HostPort(parsing: "bad host:1") }
        #expect(throws: AddressError.invalidIPv4("1.2.3.999")) { try HostPort(parsing: "1.2.3.999:1") }
        #expect(try await HostPort(parsing: "127.0.0.1:9").resolve() == [Endpoint("127.0.0.1:9")!])
        #expect(try await HostPort(parsing: "localhost:9").resolve().allSatisfy { $0.ip.isLoopback })
    }

    @Test("compact forms and NIO socket addresses round-trip")
    func compactAndSockets() throws {
        for text in ["1.2.3.4:6881", "[2001:db8::7]:65535", "0.0.0.0:0"] {
            let endpoint = try Endpoint(parsing: text)
            #expect(Endpoint(compact: endpoint.compact) == endpoint)
            #expect(Endpoint(endpoint.socketAddress) == endpoint)
            #expect(
                endpoint.socketAddress
                    == (try SocketAddress(ipAddress: endpoint.ip.description, port: Int(endpoint.port))))
        }
        #expect(Endpoint(compact: [1, 2, 3, 4, 0x1A]) == nil)
        let run = Endpoint.parseCompact([1, 2, 3, 4, 0, 80, 5, 6, 7, 8, 1, 0, 9], ipLength: 4)
        #expect(run == [Endpoint("1.2.3.4:80")!, Endpoint("5.6.7.8:256")!])
        #expect(throws: AddressError.self) { try SocketAddress(unixDomainSocketPath: "/tmp/x").endpoint() }
    }

    @Test("any bytes parse or fail with a typed error, never trap")
    func total() {
        var random = SplitMix64(seed: 7)
        let alphabet = Array("0123456789abcdef:.[]%x ".utf8)
        for _ in 0..<20_000 {
            let length = Int(random.next() % 24)
            let text = String(
                decoding: (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] },
                as: UTF8.self)
            if let endpoint = try? Endpoint(parsing: text, defaultPort: 1) {
                #expect(Endpoint(endpoint.description) == endpoint)
            }
            _ = try? HostPort(parsing: text)
        }
    }
}
