import Testing

@testable import BitTorrent

@Suite("Magnet links (BEP 9, 53)")
struct MagnetLinkTests {
    @Test("hex and base32 info-hashes name the same torrent")
    func infoHashForms() throws {
        let hex = try MagnetLink(parsing: "magnet:?xt=urn:btih:7b5e918f364908afab937ecdd84059dfb61102b7")
        let base32 = try MagnetLink(parsing: "magnet:?xt=urn:btih:PNPJDDZWJEEK7K4TP3G5QQCZ363BCAVX")
        let upper = try MagnetLink(parsing: "MAGNET:?xt=urn:btih:7B5E918F364908AFAB937ECDD84059DFB61102B7")
        #expect(hex.infoHash == base32.infoHash)
        #expect(hex.infoHash == upper.infoHash)
        #expect(hex.infoHash?.hex == "7b5e918f364908afab937ecdd84059dfb61102b7")
        #expect(Base32.encode(hex.infoHash?.bytes ?? []) == "PNPJDDZWJEEK7K4TP3G5QQCZ363BCAVX")
    }

    @Test("every parameter, repeated trackers and percent-encoding")
    func parameters() throws {
        let link = try MagnetLink(
            parsing: "magnet:?xt=urn:btih:7b5e918f364908afab937ecdd84059dfb61102b7"
                + "&xt=urn:btmh:1220" + String(repeating: "ab", count: 32)
                + "&dn=hello+w%C3%B6rld%2B&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce%3Fa%3D1%2B2&tr.1=udp://t:80"
                + "&x.pe=127.0.0.1:6881&x.pe=[::1]:6881&ws=http://seed/f+1&so=0,2,4-6&xl=12&unknown=1")
        #expect(link.infoHashV2 == [0x12, 0x20] + [UInt8](repeating: 0xAB, count: 32))
        #expect(link.displayName == "hello wörld+")
        #expect(link.trackers == ["http://127.0.0.1:6969/announce?a=1+2", "udp://t:80"])
        #expect(link.peers == ["127.0.0.1:6881", "[::1]:6881"])
        #expect(link.webSeeds == ["http://seed/f+1"])
        #expect(link.selectOnly == [0...0, 2...2, 4...6])
        let again = try MagnetLink(parsing: link.uri)
        #expect(again == link)
    }

    @Test("formatting is what clients expect")
    func format() throws {
        let hash = try #require(InfoHash("7b5e918f364908afab937ecdd84059dfb61102b7"))
        let link = MagnetLink(infoHash: hash, displayName: "a b/ü", trackers: ["http://t:1/a?x=1&y=2"])
        #expect(
            link.uri
                == "magnet:?xt=urn:btih:7b5e918f364908afab937ecdd84059dfb61102b7&dn=a%20b%2F%C3%BC"
                + "&tr=http%3A%2F%2Ft%3A1%2Fa%3Fx%3D1%26y%3D2")
    }

    @Test(
        "bad links are refused with a reason",
        arguments: [
            ("http://x", MagnetLinkError.notAMagnetLink),
            ("magnet:?dn=x", .missingInfoHash),
            ("magnet:?xt=urn:btih:1234", .invalidInfoHash("1234")),
            (
                "magnet:?xt=urn:btih:7b5e918f364908afab937ecdd84059dfb61102b7&dn=%zz",
                .badPercentEncoding(parameter: "dn")
            ),
            (
                "magnet:?xt=urn:btih:7b5e918f364908afab937ecdd84059dfb61102b7&dn=%ff",
                .invalidUTF8(parameter: "dn")
            ),
            (
                "magnet:?xt=urn:btih:7b5e918f364908afab937ecdd84059dfb61102b7&so=3-1",
                .invalidSelectOnly("3-1")
            ),
            ("magnet:?xt=urn:btmh:1120abcd", .invalidInfoHash("1120abcd")),
        ])
    func badLinks(text: String, expected: MagnetLinkError) {
        #expect(throws: expected) { try MagnetLink(parsing: text) }
    }

    @Test("a torrent's magnet link carries its name, trackers and web seeds")
    func fromMetainfo() throws {
        let info =
            bytes("d6:lengthi12e4:name9:hello.txt12:piece lengthi16384e6:pieces20:") + helloPiece + bytes("e")
        let metainfo = try Metainfo(
            parsing: bytes("d8:announce8:http://a4:info") + info + bytes("8:url-list9:http://s/e"))
        let link = metainfo.magnetLink
        #expect(link.infoHash == metainfo.infoHash)
        #expect(link.displayName == "hello.txt")
        #expect(link.trackers == ["http://a"])
        #expect(link.webSeeds == ["http://s/"])
    }
}
