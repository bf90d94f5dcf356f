import NIOCore
import NIOSSL
import PeerNet

/// Announces a torrent to its trackers (BEP 3, 12, 15): every tier in parallel, the URLs of
/// a tier in order until one answers (which then moves to the front, as BEP 12 says), again
/// at the interval the tracker asks for. Runs on the driver's loop.
final class TrackerAnnouncer: @unchecked Sendable {
    private var tiers: [[String]]
    private let client: TrackerClient
    private var trackerIDs: [String: String] = [:]
    private var nextAnnounce: Moment = .zero
    private var inFlight = 0
    private var sentStarted = false
    private var completedPending = false
    private var roundStarted: Moment = .zero
    private var roundInterval = 1_800
    private var roundSucceeded = false
    private var addPeers: ([Endpoint]) -> Void = { _ in }
    private let key = UInt32.random(in: 0...UInt32.max)
    /// A hybrid torrent's other info-hash, announced beside the request's (BEP 52: it is in
    /// both swarms).
    var alternateInfoHash: InfoHash?
    /// Outcome reports for the log and the progress view.
    var onResult: (String, Result<AnnounceResponse, Error>) -> Void = { _, _ in }

    init(tiers: [[String]], loop: EventLoop, extraTrustRoots: [NIOSSLCertificate] = []) {
        self.tiers = tiers.filter { !$0.isEmpty }
        client = TrackerClient(loop: loop, extraTrustRoots: extraTrustRoots)
    }

    var isEmpty: Bool { tiers.isEmpty }

    /// The download completed: tell the trackers at once.
    func completed() {
        guard sentStarted else { return }
        completedPending = true
        nextAnnounce = .zero
    }

    /// Announces when due; `request` fills in the numbers, `addPeers` takes what comes back.
    func tick(
        now: Moment, request: (AnnounceEvent) -> AnnounceRequest, addPeers: @escaping ([Endpoint]) -> Void
    ) {
        guard !tiers.isEmpty, inFlight == 0, now >= nextAnnounce else { return }
        let event: AnnounceEvent = !sentStarted ? .started : completedPending ? .completed : .none
        sentStarted = true
        completedPending = false
        var base = request(event)
        base.key = key
        self.addPeers = addPeers
        roundStarted = now
        roundInterval = 1_800
        roundSucceeded = false
        let requests =
            [base]
            + (alternateInfoHash.map { hash in
                var other = base
                other.infoHash = hash
                return [other]
            } ?? [])
        inFlight = tiers.count * requests.count
        for request in requests {
            for index in tiers.indices { announce(tier: index, position: 0, request) }
        }
    }

    /// One tier is done (with the first answer, or nil when none of its trackers answered).
    private func tierFinished(_ response: AnnounceResponse?) {
        if let response {
            roundSucceeded = true
            roundInterval = min(roundInterval, max(response.minInterval ?? 0, response.interval))
            addPeers(response.peers)
        }
        inFlight -= 1
        if inFlight == 0 {
            // A failed round is retried sooner than a good one.
            nextAnnounce = roundStarted + .seconds(roundSucceeded ? max(30, roundInterval) : 60)
        }
    }

    private func announce(tier: Int, position: Int, _ base: AnnounceRequest) {
        guard position < tiers[tier].count else { return tierFinished(nil) }
        let url = tiers[tier][position]
        var request = base
        request.trackerID = trackerIDs[url]
        client.announce(url, request, timeout: .seconds(20)).whenComplete { result in
            self.onResult(url, result)
            switch result {
            case .success(let response):
                if let id = response.trackerID { self.trackerIDs[url] = id }
                if position > 0 {
                    self.tiers[tier].remove(at: position)
                    self.tiers[tier].insert(url, at: 0)
                }
                self.tierFinished(response)
            case .failure:
                self.announce(tier: tier, position: position + 1, base)
            }
        }
    }

    /// The `stopped` event, to the first tracker of each tier, bounded by `timeout`.
    func stopped(_ request: AnnounceRequest, timeout: TimeAmount, on loop: EventLoop) -> EventLoopFuture<Void>
    {
        guard sentStarted else { return loop.makeSucceededVoidFuture() }
        var stop = request
        stop.event = .stopped
        stop.key = key
        let hashes = [stop.infoHash] + (alternateInfoHash.map { [$0] } ?? [])
        let futures = tiers.compactMap { $0.first }.flatMap { url in
            hashes.map { hash in
                var request = stop
                request.infoHash = hash
                return client.announce(url, request, timeout: timeout).map { _ in }.recover { _ in }
            }
        }
        return EventLoopFuture.andAllComplete(futures, on: loop)
    }
}
