import Blockchain
import Foundation

/// The JSON files of Tests/Vectors/bitcoin (python-bitcoinlib's test data, mostly Bitcoin
/// Core's; Tests/Vectors/README.md names each), with one-string comment lines left out.
enum Vectors {
    static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<2 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Vectors/bitcoin").standardized
    }()

    static func load(_ name: String) throws -> [[Any]] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        let all = try JSONSerialization.jsonObject(with: data) as? [[Any]] ?? []
        return all.filter { $0.count > 1 }
    }

    static func hex(_ text: String) -> [UInt8] { Hex.decode(text) ?? [] }
}
