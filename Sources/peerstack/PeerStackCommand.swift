import ArgumentParser

#if canImport(Glibc)
    import Glibc
#endif

#if canImport(Glibc)
    /// glibc's `mallopt` (malloc.h is not part of the Glibc module).
    @_silgen_name("mallopt")
    func mallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

@main
struct PeerStackCommand: AsyncParsableCommand {
    static func main() async {
        #if canImport(Glibc)
            // Piece buffers are large and short-lived: serve them with mmap so freed memory goes
            // back to the system (glibc's adaptive threshold would keep them in the heap), and
            // keep two arenas rather than one per thread.
            _ = mallopt(-3, 256 << 10)  // M_MMAP_THRESHOLD
            _ = mallopt(-8, 2)  // M_ARENA_MAX
            // Fixing the mmap threshold also fixes the trim threshold at 128 KiB, so the heap's
            // top was handed back and faulted in again for every 64 KiB Noise frame; keep up
            // to 8 MiB of it.
            _ = mallopt(-1, 8 << 20)  // M_TRIM_THRESHOLD
        #endif
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "peerstack",
        abstract:
            "Peer-to-peer protocols: BitTorrent with its tracker and DHT, IPFS content addressing, a Bitcoin-format chain.",
        version: "0.1.0",
        subcommands: [
            TorrentCommand.self, TrackerCommand.self, DHTCommand.self, IPFSCommand.self, P2PCommand.self,
            ChainCommand.self, GnutellaCommand.self, ED2KCommand.self, PubSubCommand.self,
            MembersCommand.self,
            SimCommand.self,
            SwarmCommand.self,
        ]
    )
}
