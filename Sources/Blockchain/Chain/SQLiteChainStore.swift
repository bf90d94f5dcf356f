import Foundation
import GRDB

/// The chain in SQLite (GRDB, WAL journal): block index and data, the UTXO set, undo data and
/// the tip. Every ``apply(_:)`` is one transaction, so `kill -9` at any moment leaves the state of
/// the last completed step; a block's data is written before the step that connects it.
public final class SQLiteChainStore: ChainStore, Sendable {
    let database: DatabasePool

    public init(path: String) throws {
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(10)
        database = try DatabasePool(path: path, configuration: configuration)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("chain-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE block (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        hash BLOB NOT NULL UNIQUE,
                        height INTEGER NOT NULL,
                        header BLOB NOT NULL,
                        data BLOB,
                        invalid INTEGER NOT NULL DEFAULT 0);
                    CREATE TABLE coin (outpoint BLOB PRIMARY KEY, coin BLOB NOT NULL) WITHOUT ROWID;
                    CREATE TABLE undo (hash BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
                    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
                    """)
        }
        try migrator.migrate(database)
    }

    static func key(_ outpoint: OutPoint) -> Data {
        var writer = ByteWriter()
        writer.append(outpoint.txid.bytes)
        writer.littleEndian(outpoint.index)
        return Data(writer.bytes)
    }

    public func entries() throws -> [StoredBlockEntry] {
        try database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT header, height, data IS NOT NULL AS has, invalid FROM block ORDER BY seq"
            )
            .map { row in
                let header: Data = row["header"]
                return StoredBlockEntry(
                    header: try BlockHeader(bytes: [UInt8](header)), height: row["height"],
                    hasData: row["has"],
                    invalid: row["invalid"])
            }
        }
    }

    public func tip() throws -> Hash256? {
        try database.read { db in
            guard let data = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'tip'"),
                data.count == 32
            else { return nil }
            return Hash256(bytes: [UInt8](data))
        }
    }

    public func allCoins() throws -> [OutPoint: Coin] {
        try database.read { db in
            var coins: [OutPoint: Coin] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT outpoint, coin FROM coin")
            while let row = try rows.next() {
                let key: Data = row["outpoint"]
                let value: Data = row["coin"]
                guard key.count == 36 else { continue }
                let bytes = [UInt8](key)
                let index = bytes[32..<36].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                coins[OutPoint(txid: Hash256(bytes: Array(bytes[0..<32])), index: index)] = try Coin(
                    bytes: [UInt8](value))
            }
            return coins
        }
    }

    public func block(_ hash: Hash256) throws -> Block? {
        try database.read { db in
            guard
                let data = try Data.fetchOne(
                    db, sql: "SELECT data FROM block WHERE hash = ?", arguments: [Data(hash.bytes)])
            else { return nil }
            return try Block(bytes: [UInt8](data))
        }
    }

    public func undo(_ hash: Hash256) throws -> BlockUndo? {
        try database.read { db in
            guard
                let data = try Data.fetchOne(
                    db, sql: "SELECT data FROM undo WHERE hash = ?", arguments: [Data(hash.bytes)])
            else { return nil }
            return try BlockUndo(bytes: [UInt8](data))
        }
    }

    public func store(_ entry: StoredBlockEntry, block: Block?) throws {
        try database.write { db in try Self.store(entry, block: block, in: db) }
    }

    static func store(_ entry: StoredBlockEntry, block: Block?, in db: Database) throws {
        do {
            let hash = Data(entry.header.hash.bytes)
            try db.execute(
                sql: """
                    INSERT INTO block (hash, height, header, data, invalid) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(hash) DO UPDATE SET data = COALESCE(excluded.data, data), invalid = excluded.invalid
                    """,
                arguments: [
                    hash, entry.height, Data(entry.header.serialized()), block.map { Data($0.serialized()) },
                    entry.invalid,
                ])
        }
    }

    public func storeHeaders(_ entries: [StoredBlockEntry]) throws {
        try database.write { db in try Self.storeHeaders(entries, in: db) }
    }

    static func storeHeaders(_ entries: [StoredBlockEntry], in db: Database) throws {
        do {
            for entry in entries {
                try db.execute(
                    sql:
                        "INSERT INTO block (hash, height, header, invalid) VALUES (?, ?, ?, 0) ON CONFLICT(hash) DO NOTHING",
                    arguments: [Data(entry.header.hash.bytes), entry.height, Data(entry.header.serialized())])
            }
        }
    }

    public func markInvalid(_ hash: Hash256) throws {
        try database.write { db in try Self.markInvalid(hash, in: db) }
    }

    static func markInvalid(_ hash: Hash256, in db: Database) throws {
        do {
            try db.execute(sql: "UPDATE block SET invalid = 1 WHERE hash = ?", arguments: [Data(hash.bytes)])
        }
    }

    public func apply(_ update: ChainUpdate) throws {
        try database.write { db in try Self.apply(update, in: db) }
    }

    /// Every write of `batch` in one transaction.
    public func write(_ batch: [ChainWrite]) throws {
        try database.write { db in
            for operation in batch {
                switch operation {
                case .store(let entry, let block): try Self.store(entry, block: block, in: db)
                case .headers(let entries): try Self.storeHeaders(entries, in: db)
                case .markInvalid(let hash): try Self.markInvalid(hash, in: db)
                case .apply(let update): try Self.apply(update, in: db)
                }
            }
        }
    }

    static func apply(_ update: ChainUpdate, in db: Database) throws {
        do {
            for outpoint in update.removedCoins {
                try db.execute(sql: "DELETE FROM coin WHERE outpoint = ?", arguments: [Self.key(outpoint)])
            }
            for (outpoint, coin) in update.addedCoins {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO coin (outpoint, coin) VALUES (?, ?)",
                    arguments: [Self.key(outpoint), Data(coin.serialized)])
            }
            if let (hash, data) = update.undo {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO undo (hash, data) VALUES (?, ?)",
                    arguments: [Data(hash.bytes), Data(data.serialized)])
            }
            if let hash = update.droppedUndo {
                try db.execute(sql: "DELETE FROM undo WHERE hash = ?", arguments: [Data(hash.bytes)])
            }
            try db.execute(
                sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('tip', ?)",
                arguments: [Data(update.tip.bytes)])
        }
    }
}
