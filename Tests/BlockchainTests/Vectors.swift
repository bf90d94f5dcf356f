import Blockchain
import Foundation

/// The JSON files of ../shared/vectors/bitcoin (python-bitcoinlib's test data, mostly Bitcoin
/// Core's), with one-string comment lines left out.
enum Vectors {
    static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        let local = url.appendingPathComponent("../shared/vectors/bitcoin").standardized
        return local
    }()

    static func load(_ name: String) throws -> [[Any]] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        let all = try JSONSerialization.jsonObject(with: data) as? [[Any]] ?? []
        return all.filter { $0.count > 1 }
    }

    static func hex(_ text: String) -> [UInt8] { Hex.decode(text) ?? [] }
}
