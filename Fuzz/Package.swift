// swift-tools-version: 6.0
import PackageDescription

/// libFuzzer targets, kept in their own package so that `-sanitize=fuzzer` applies only when
/// this package is built (see Fuzz/README.md), never to the main build.
let package = Package(
    name: "PeerStackFuzz",
    dependencies: [
        .package(name: "PeerStack", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: [
        .target(name: "FuzzSupport"),
        .executableTarget(
            name: "FuzzBencode",
            dependencies: ["FuzzSupport", .product(name: "Bencode", package: "PeerStack")]
        ),
        .executableTarget(
            name: "FuzzMetainfo",
            dependencies: [
                "FuzzSupport",
                .product(name: "Bencode", package: "PeerStack"),
                .product(name: "BitTorrent", package: "PeerStack"),
            ]
        ),
        .executableTarget(
            name: "FuzzMerkle",
            dependencies: [
                "FuzzSupport", .product(name: "Bencode", package: "PeerStack"),
                .product(name: "BitTorrent", package: "PeerStack"),
            ]
        ),
        .executableTarget(
            name: "FuzzPeerWire",
            dependencies: ["FuzzSupport", .product(name: "BitTorrent", package: "PeerStack")]
        ),
        .executableTarget(
            name: "FuzzEDonkey",
            dependencies: ["FuzzSupport", .product(name: "EDonkey", package: "PeerStack")]
        ),
        .executableTarget(
            name: "FuzzMemberlist",
            dependencies: [
                "FuzzSupport", .product(name: "Gossip", package: "PeerStack"),
                .product(name: "PeerNet", package: "PeerStack"),
            ]
        ),
        .executableTarget(
            name: "FuzzGossip",
            dependencies: ["FuzzSupport", .product(name: "Gossip", package: "PeerStack")]
        ),
        .executableTarget(
            name: "FuzzGnutella",
            dependencies: ["FuzzSupport", .product(name: "Gnutella", package: "PeerStack")]
        ),
        .executableTarget(
            name: "FuzzCID",
            dependencies: ["FuzzSupport", .product(name: "Multiformats", package: "PeerStack")]
        ),
        .executableTarget(
            name: "FuzzDagPB",
            dependencies: [
                "FuzzSupport", .product(name: "IPFS", package: "PeerStack"),
                .product(name: "Multiformats", package: "PeerStack"),
            ]
        ),
        .executableTarget(
            name: "FuzzCAR",
            dependencies: [
                "FuzzSupport", .product(name: "IPFS", package: "PeerStack"),
                .product(name: "Multiformats", package: "PeerStack"),
            ]
        ),
        .executableTarget(
            name: "FuzzBitcoin",
            dependencies: ["FuzzSupport", .product(name: "Blockchain", package: "PeerStack")]
        ),
        .executableTarget(
            name: "FuzzLibp2p",
            dependencies: [
                "FuzzSupport", .product(name: "Libp2p", package: "PeerStack"),
                .product(name: "PeerCrypto", package: "PeerStack"),
            ]
        ),
        .executableTarget(
            name: "FuzzMSE",
            dependencies: ["FuzzSupport", .product(name: "PeerCrypto", package: "PeerStack")]
        ),
        .executableTarget(
            name: "FuzzUTP",
            dependencies: [
                "FuzzSupport", .product(name: "PeerNet", package: "PeerStack"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "FuzzKRPC",
            dependencies: ["FuzzSupport", .product(name: "MainlineDHT", package: "PeerStack")]
        ),
        .executableTarget(
            name: "FuzzUDPTracker",
            dependencies: [
                "FuzzSupport", .product(name: "BitTorrent", package: "PeerStack"),
                .product(name: "BitTorrentTracker", package: "PeerStack"),
                .product(name: "PeerNet", package: "PeerStack"),
            ]
        ),
        .executableTarget(
            name: "FuzzHTTPTrackerQuery",
            dependencies: [
                "FuzzSupport", .product(name: "Bencode", package: "PeerStack"),
                .product(name: "BitTorrent", package: "PeerStack"),
                .product(name: "BitTorrentTracker", package: "PeerStack"),
                .product(name: "PeerNet", package: "PeerStack"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
