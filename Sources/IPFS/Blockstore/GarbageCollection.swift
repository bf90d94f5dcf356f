import Multiformats

#if canImport(Glibc)
    import Glibc
#endif

extension FileBlockstore {
    /// What ``collectGarbage(keeping:)`` did.
    public struct CollectionReport: Sendable {
        public var kept = 0
        public var removed = 0
        /// Blocks reachable from a root that are missing or do not match their CID (their
        /// children could not be followed).
        public var unreadable: [CID] = []
    }

    /// Removes every block not reachable from `roots` (no pins: the roots are the whole rule),
    /// and the leftovers of interrupted writes.
    public func collectGarbage(keeping roots: [CID]) throws -> CollectionReport {
        var report = CollectionReport()
        var reachable: Set<Multihash> = []
        var stack = roots
        while let cid = stack.popLast() {
            guard reachable.insert(cid.multihash).inserted else { continue }
            do {
                let bytes = try verifiedBlock(cid)
                stack.append(contentsOf: try UnixFSExporter.decode(cid, bytes).links)
            } catch {
                report.unreadable.append(cid)
            }
        }
        for entry in try allBlocks() {
            if let multihash = entry.multihash, reachable.contains(multihash) {
                report.kept += 1
            } else {
                if unlink(entry.path.string) == 0 { report.removed += 1 }
            }
        }
        try sync()
        return report
    }
}
