// swift-tools-version: 6.0
import PackageDescription

/// PeerStack: peer-to-peer protocol libraries and the `peerstack` command.
/// The module map follows ../shared/DESIGN.md; a module imports only modules below it.
let package = Package(
    name: "PeerStack",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Bencode", targets: ["Bencode"]),
        .library(name: "Blockchain", targets: ["Blockchain"]),
        .library(name: "BitTorrent", targets: ["BitTorrent"]),
        .library(name: "BitTorrentTracker", targets: ["BitTorrentTracker"]),
        .library(name: "EDonkey", targets: ["EDonkey"]),
        .library(name: "Gnutella", targets: ["Gnutella"]),
        .library(name: "Gossip", targets: ["Gossip"]),
        .library(name: "IPFS", targets: ["IPFS"]),
        .library(name: "Kademlia", targets: ["Kademlia"]),
        .library(name: "MainlineDHT", targets: ["MainlineDHT"]),
        .library(name: "Multiformats", targets: ["Multiformats"]),
        .library(name: "Libp2p", targets: ["Libp2p"]),
        .library(name: "PeerCrypto", targets: ["PeerCrypto"]),
        .library(name: "PeerNet", targets: ["PeerNet"]),
        .library(name: "PeerSim", targets: ["PeerSim"]),
        .executable(name: "peerstack", targets: ["peerstack"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
    ],
    targets: [
        // System libraries (Debian -dev packages that scripts/test installs)
        .systemLibrary(
            name: "CSecp256k1", pkgConfig: "libsecp256k1", providers: [.apt(["libsecp256k1-dev"])]),
        .systemLibrary(name: "CNettle", pkgConfig: "nettle", providers: [.apt(["nettle-dev"])]),
        .systemLibrary(name: "COpenSSLSHA", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Encodings
        .target(name: "Bencode"),
        .target(name: "Multiformats", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // Security
        .target(
            name: "PeerCrypto",
            dependencies: [
                "CNettle", "CSecp256k1", "Multiformats", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
            ]),
        // libp2p's connection stack (multistream-select, the security handshakes, yamux)
        .target(
            name: "Libp2p",
            dependencies: [
                "Kademlia", "Multiformats", "PeerCrypto", "PeerNet",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]),
        // Transport
        .target(
            name: "PeerNet",
            dependencies: [
                "CZlib",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Discovery
        .target(name: "Kademlia"),
        .target(
            name: "MainlineDHT",
            dependencies: [
                "Bencode", "Kademlia", "PeerNet", "PeerSim",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Gossip: GossipSub on libp2p, SWIM membership as memberlist speaks it
        .target(
            name: "Gossip",
            dependencies: [
                "Libp2p", "Multiformats", "PeerCrypto", "PeerNet", "PeerSim",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Simulation
        .target(
            name: "PeerSim",
            dependencies: [
                "PeerNet",
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        // Application
        .target(
            name: "BitTorrent",
            dependencies: [
                "Bencode", "MainlineDHT", "PeerCrypto", "PeerNet",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "Blockchain",
            dependencies: [
                "CNettle", "COpenSSLSHA", "Multiformats", "PeerCrypto", "PeerNet", "PeerSim",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "IPFS",
            dependencies: [
                "Libp2p", "Multiformats", "PeerCrypto", "PeerNet",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "EDonkey",
            dependencies: [
                "CNettle", "Multiformats", "PeerNet",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "Gnutella",
            dependencies: [
                "Multiformats", "PeerNet", "PeerSim",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "BitTorrentTracker",
            dependencies: [
                "Bencode",
                "BitTorrent",
                "PeerNet",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Command
        .executableTarget(
            name: "peerstack",
            dependencies: [
                "Bencode",
                "BitTorrent",
                "BitTorrentTracker",
                "Blockchain",
                "EDonkey",
                "Gnutella",
                "Gossip",
                "IPFS",
                "Kademlia",
                "Libp2p",
                "MainlineDHT",
                "Multiformats",
                "PeerCrypto",
                "PeerNet",
                "PeerSim",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The BEP 15 load generator of Benchmarks/tracker.sh (not a test, not shipped).
        .executableTarget(
            name: "tracker-load",
            dependencies: [
                "BitTorrent",
                "PeerNet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/TrackerLoad"
        ),
        // The Blockchain side of Benchmarks/chain.sh (not a test, not shipped).
        .executableTarget(
            name: "chain-bench",
            dependencies: ["Blockchain", .product(name: "Crypto", package: "swift-crypto")],
            path: "Benchmarks/ChainBench"
        ),
        // Shared by the test targets only: seeded randomness for reproducible tests and payloads.
        .target(name: "TestSupport", dependencies: ["PeerNet"], path: "Tests/TestSupport"),
        .testTarget(name: "BencodeTests", dependencies: ["Bencode", "TestSupport"]),
        .testTarget(
            name: "BlockchainTests",
            dependencies: [
                "Blockchain", "PeerNet", .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .testTarget(
            name: "BitTorrentTests",
            dependencies: [
                "BitTorrent", "Bencode", "MainlineDHT", "PeerNet", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .testTarget(
            name: "BitTorrentTrackerTests",
            dependencies: ["BitTorrentTracker", "BitTorrent", "Bencode", "PeerNet", "TestSupport"]),
        .testTarget(
            name: "EDonkeyTests",
            dependencies: [
                "EDonkey", "PeerNet", "TestSupport", .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .testTarget(
            name: "GossipTests",
            dependencies: ["Gossip", "Libp2p", "Multiformats", "PeerCrypto", "PeerNet", "TestSupport"]),
        .testTarget(
            name: "GnutellaTests",
            dependencies: [
                "Gnutella", "PeerNet", "TestSupport", .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .testTarget(
            name: "IPFSTests", dependencies: ["IPFS", "Libp2p", "Multiformats", "PeerCrypto", "TestSupport"]),
        .testTarget(name: "KademliaTests", dependencies: ["Kademlia", "TestSupport"]),
        .testTarget(
            name: "MainlineDHTTests",
            dependencies: [
                "MainlineDHT", "Kademlia", "Bencode", "PeerNet", "PeerSim", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .testTarget(name: "MultiformatsTests", dependencies: ["Multiformats"]),
        .testTarget(
            name: "PeerNetTests",
            dependencies: [
                "PeerNet", "TestSupport", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .testTarget(
            name: "Libp2pTests", dependencies: ["Libp2p", "Multiformats", "PeerCrypto", "TestSupport"]),
        .testTarget(
            name: "PeerCryptoTests",
            dependencies: ["PeerCrypto", "Multiformats", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "PeerSimTests", dependencies: ["PeerSim"]),
        .testTarget(name: "PeerstackTests", dependencies: ["peerstack", "TestSupport"]),
        .testTarget(
            name: "InteropTests",
            dependencies: [
                "BitTorrent", "BitTorrentTracker", "Bencode", "Blockchain", "EDonkey", "Gnutella", "IPFS",
                "MainlineDHT",
                "Multiformats",
                "PeerNet",
                "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Tests/Interop",
            exclude: ["Scripts"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
