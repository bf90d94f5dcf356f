import TestSupport
import Testing

@testable import Bencode

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite("Bencode decoding (BEP 3)")
struct BencodeDecodingTests {
    let strict = BencodeDecoder()
    let lenient = BencodeDecoder(mode: .lenient)

    @Test(
        "BEP 3's own examples decode",
        arguments: [
            ("i3e", BencodeValue.integer(3)),
            ("i-3e", .integer(-3)),
            ("i0e", .integer(0)),
            ("4:spam", "spam" as BencodeValue),
            ("0:", .bytes([])),
            ("l4:spam4:eggse", ["spam", "eggs"] as BencodeValue),
            ("d3:cow3:moo4:spam4:eggse", ["cow": "moo", "spam": "eggs"] as BencodeValue),
            ("d4:spaml1:a1:bee", ["spam": ["a", "b"]] as BencodeValue),
            ("le", .list([])),
            ("de", .dictionary([:])),
            ("i9223372036854775807e", .integer(.max)),
            ("i-9223372036854775808e", .integer(.min)),
        ])
    func examples(input: String, expected: BencodeValue) throws {
        #expect(try strict.decode(bytes(input)) == expected)
        #expect(expected.encoded() == bytes(input))
    }

    @Test(
        "strict mode names each broken rule and its offset",
        arguments: [
            ("", BencodeError.emptyInput),
            ("i03e", .nonCanonicalInteger(offset: 1)),
            ("i-0e", .nonCanonicalInteger(offset: 1)),
            ("ie", .emptyInteger(offset: 1)),
            ("i-e", .emptyInteger(offset: 1)),
            ("i12", .unexpectedEnd(offset: 3)),
            ("i1x2e", .unexpectedByte(UInt8(ascii: "x"), offset: 2)),
            ("i9223372036854775808e", .integerOverflow(offset: 1)),
            ("i-9223372036854775809e", .integerOverflow(offset: 1)),
            ("03:abc", .nonCanonicalInteger(offset: 0)),
            ("5:abc", .stringBeyondEnd(length: 5, offset: 0)),
            ("99999999999999999999:a", .invalidStringLength(offset: 0)),
            ("3abc", .invalidStringLength(offset: 0)),
            ("-3:abc", .unexpectedByte(UInt8(ascii: "-"), offset: 0)),
            ("d1:b1:x1:a1:ye", .unsortedKey(offset: 7)),
            ("d1:a1:x1:a1:ye", .duplicateKey(offset: 7)),
            ("di1e1:ae", .nonStringKey(offset: 1)),
            ("d1:a", .unexpectedEnd(offset: 4)),
            ("l", .unexpectedEnd(offset: 1)),
            ("i1ei2e", .trailingData(offset: 3)),
            ("x", .unexpectedByte(UInt8(ascii: "x"), offset: 0)),
            ("l4:spame\n", .trailingData(offset: 8)),
        ])
    func strictErrors(input: String, expected: BencodeError) {
        #expect(throws: expected) { try strict.decode(bytes(input)) }
    }

    @Test("error messages say what and where")
    func errorMessage() {
        #expect(
            BencodeError.unsortedKey(offset: 7).description == "dictionary keys are not sorted (at byte 7)")
        #expect(BencodeError.unexpectedByte(0x01, offset: 2).description == "unexpected byte 0x1 (at byte 2)")
    }

    @Test("lenient mode reads what real-world torrents contain")
    func lenientMode() throws {
        #expect(try lenient.decode(bytes("d1:b1:x1:a1:ye")) == ["a": "y", "b": "x"])
        // A repeated key: the first one wins, as libtorrent's lookup finds the first.
        #expect(try lenient.decode(bytes("d1:a1:x1:a1:ye")) == ["a": "x"])
        #expect(try lenient.decode(bytes("i03e")) == 3)
        #expect(try lenient.decode(bytes("l4:spame\n")) == ["spam"])
        // Still total: structural errors are errors.
        #expect(throws: BencodeError.stringBeyondEnd(length: 5, offset: 0)) {
            try lenient.decode(bytes("5:abc"))
        }
    }

    @Test("nodes carry the exact byte range of every value")
    func ranges() throws {
        let input = bytes("d4:infod1:b1:x1:a1:ye3:numi7ee")
        let node = try lenient.decodeNode(input)
        #expect(node.range == 0..<input.count)
        let info = try #require(node["info"])
        #expect(Array(input[info.range]) == bytes("d1:b1:x1:a1:ye"))
        #expect(node["num"]?.range == 26..<29)
        #expect(node.entry(forKey: bytes("num"))?.keyOffset == 21)
        #expect(node.value == ["info": ["a": "y", "b": "x"], "num": 7])
    }

    @Test("a prefix decode reports how many bytes the value used")
    func prefix() throws {
        let input = bytes("d8:msg_typei1e5:piecei0eeRAWDATA")
        let (value, length) = try strict.decodePrefix(input[...])
        #expect(value["msg_type"] == 1)
        #expect(Array(input[length...]) == bytes("RAWDATA"))
    }

    @Test("limits on depth, count and size are errors, not allocations")
    func limits() {
        let deep = bytes(String(repeating: "l", count: 40) + String(repeating: "e", count: 40))
        #expect(throws: BencodeError.depthLimitExceeded(limit: 32, offset: 32)) { try strict.decode(deep) }
        let small = BencodeDecoder(limits: .init(maxDepth: 8, maxElements: 3, maxInputSize: 16))
        #expect(throws: BencodeError.elementLimitExceeded(limit: 3, offset: 7)) {
            try small.decode(bytes("li1ei2ei3ee"))
        }
        #expect(throws: BencodeError.inputTooLarge(size: 17, limit: 16)) {
            try small.decode(bytes("17:aaaaaaaaaaaaaa"))
        }
        // A huge claimed length is refused before anything is allocated.
        #expect(throws: BencodeError.stringBeyondEnd(length: 9_000_000_000_000, offset: 0)) {
            try strict.decode(bytes("9000000000000:x"))
        }
    }
}

func randomValue(_ rng: inout SeededGenerator, depth: Int = 0) -> BencodeValue {
    let choice = depth > 4 ? Int.random(in: 0..<2, using: &rng) : Int.random(in: 0..<4, using: &rng)
    switch choice {
    case 0:
        let magnitude = [Int64(0), 1, 9, 10, 255, 1 << 32, .max, .min][Int.random(in: 0..<8, using: &rng)]
        return .integer(Bool.random(using: &rng) && magnitude != .min ? -magnitude : magnitude)
    case 1:
        return .bytes(
            (0..<Int.random(in: 0..<12, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
    case 2:
        return .list(
            (0..<Int.random(in: 0..<5, using: &rng)).map { _ in randomValue(&rng, depth: depth + 1) })
    default:
        var entries: [[UInt8]: BencodeValue] = [:]
        for _ in 0..<Int.random(in: 0..<5, using: &rng) {
            let key = (0..<Int.random(in: 0..<4, using: &rng)).map { _ in
                UInt8.random(in: 0x61...0x64, using: &rng)
            }
            entries[key] = randomValue(&rng, depth: depth + 1)
        }
        return .dictionary(entries)
    }
}

@Suite("Bencode round trips and totality")
struct BencodePropertyTests {
    @Test("encode then strict decode gives the value back; re-encoding gives the same bytes")
    func roundTrip() throws {
        var rng = SeededGenerator(state: 42)
        for _ in 0..<2_000 {
            let value = randomValue(&rng)
            let encoded = value.encoded()
            let decoded = try BencodeDecoder().decode(encoded)
            #expect(decoded == value)
            #expect(decoded.encoded() == encoded)
            #expect(try BencodeDecoder().decodeNode(encoded).value == value)
        }
    }

    @Test("mutated input never traps: a value or a typed error with an offset inside the input")
    func mutations() {
        var rng = SeededGenerator(state: 7)
        let alphabet = bytes("ilde0123456789:-x")
        for _ in 0..<5_000 {
            var input = randomValue(&rng).encoded()
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                guard !input.isEmpty else { break }
                let position = Int.random(in: 0..<input.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: input[position] = alphabet.randomElement(using: &rng) ?? 0
                case 1: input.remove(at: position)
                default: input.insert(alphabet.randomElement(using: &rng) ?? 0, at: position)
                }
            }
            for mode in [BencodeDecoder.Mode.strict, .lenient] {
                do {
                    _ = try BencodeDecoder(mode: mode).decodeNode(input)
                } catch {
                    #expect(error.offset >= 0 && error.offset <= input.count)
                }
            }
        }
    }
}

@Suite("Bencode writer")
struct BencodeWriterTests {
    @Test("keys are written in raw byte order, not string order")
    func keyOrder() {
        let value: BencodeValue = .dictionary([
            [0xC3, 0xA9]: 1, bytes("Z"): 2, bytes("a"): 3, bytes("aa"): 4,
        ])
        #expect(value.encoded() == bytes("d1:Zi2e1:ai3e2:aai4e2:") + [0xC3, 0xA9] + bytes("i1ee"))
    }

    @Test("raw values are spliced verbatim")
    func raw() {
        var writer = BencodeWriter()
        writer.beginDictionary()
        writer.writeString("info")
        writer.writeRaw(bytes("d1:b0:1:a0:e"))
        writer.end()
        #expect(writer.bytes == bytes("d4:infod1:b0:1:a0:ee"))
    }
}
