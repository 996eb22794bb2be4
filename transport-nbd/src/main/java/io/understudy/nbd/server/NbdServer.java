package io.understudy.nbd.server;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.nbd.protocol.NbdProtocol;
import org.agrona.ErrorHandler;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Serves one {@link BlockDevice} as an NBD export (fixed newstyle, structured replies, {@code base:allocation})
 * on any number of Unix-domain and TCP listeners.
 * <p>
 * Threads: one acceptor per listener; per connection a receiver thread (handshake, request parsing, submission,
 * and the replies of requests the device completes inline) and a transmitter thread that finishes reply writes
 * that would block, so that no device thread ever waits on a slow client's socket. Device threads send the replies
 * of the requests they complete themselves. A read returns as many queued requests as fit the receive buffer,
 * parsed and submitted before the next system call.
 * <p>
 * With a device that completes inline on the submitting thread ({@code ThreadPoolIoEngine} with 0 workers) one
 * thread per connection does everything: read a batch of requests, execute them, send all their replies with one
 * write. On page-cache files that is the fastest arrangement measured here; handing requests to other threads
 * pays thread wake-ups per batch.
 * <p>
 * Lifecycle: {@link #bindUnix}/{@link #bindTcp}, then {@link #start()}, then {@link #close()}, which stops
 * accepting, stops reading requests, waits until every accepted request has been answered, flushes the device,
 * and closes the connections. The server does not own the device: its creator closes it afterwards.
 */
public final class NbdServer implements AutoCloseable
{
    static final System.Logger LOG = System.getLogger("io.understudy.nbd");

    private final Context context;
    private final NbdCounters counters = new NbdCounters();
    private final PayloadPool payloadPool;
    private final List<Listener> listeners = new ArrayList<>();
    private final Set<NbdConnection> connections = ConcurrentHashMap.newKeySet();
    private final AtomicLong connectionIds = new AtomicLong();
    /** The final flush waits at least this long, even when the drain timeout is set to 0. */
    private static final long MIN_FLUSH_WAIT_NANOS = TimeUnit.SECONDS.toNanos(10);
    /** Fires handshake deadlines; one daemon thread, idle unless a client dawdles. */
    private final ScheduledThreadPoolExecutor handshakeTimer = newHandshakeTimer();
    private volatile boolean closing;
    private boolean started;

    public NbdServer(final Context context)
    {
        this.context = context.conclude();
        this.payloadPool = new PayloadPool(context.payloadBudgetBytes());
    }

    /** Listens on a Unix-domain socket at {@code path}, which must not exist yet; removed again by close. */
    public NbdServer bindUnix(final Path path) throws IOException
    {
        if (started)
        {
            throw new IllegalStateException("bind before start()");
        }
        if (Files.exists(path, java.nio.file.LinkOption.NOFOLLOW_LINKS))
        {
            throw new IOException("socket path " + path + " already exists: remove it or choose another path");
        }
        final ServerSocketChannel channel = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try
        {
            channel.bind(UnixDomainSocketAddress.of(path));
        }
        catch (final IOException ex)
        {
            channel.close();
            throw new IOException("cannot listen on unix socket " + path + ": " + ex.getMessage(), ex);
        }
        listeners.add(new Listener(channel, "unix:" + path, path));
        return this;
    }

    /** Listens on TCP {@code host:port}; port 0 picks a free port, see {@link #tcpPort()}. */
    public NbdServer bindTcp(final String host, final int port) throws IOException
    {
        if (started)
        {
            throw new IllegalStateException("bind before start()");
        }
        final ServerSocketChannel channel = ServerSocketChannel.open();
        try
        {
            channel.bind(new InetSocketAddress(host, port));
        }
        catch (final IOException ex)
        {
            channel.close();
            throw new IOException("cannot listen on tcp " + host + ":" + port + ": " + ex.getMessage(), ex);
        }
        final InetSocketAddress bound = (InetSocketAddress)channel.getLocalAddress();
        listeners.add(new Listener(channel, "tcp:" + host + ":" + bound.getPort(), null));
        return this;
    }

    /** Listens on TCP 127.0.0.1:{@code port}. */
    public NbdServer bindTcp(final int port) throws IOException
    {
        return bindTcp("127.0.0.1", port);
    }

    /** @return the port of the first TCP listener (the real one when bound to port 0), or -1 if there is none. */
    public int tcpPort()
    {
        for (final Listener listener : listeners)
        {
            if (listener.unixPath == null)
            {
                try
                {
                    return ((InetSocketAddress)listener.channel.getLocalAddress()).getPort();
                }
                catch (final IOException ex)
                {
                    return -1;
                }
            }
        }
        return -1;
    }

    public void start()
    {
        if (listeners.isEmpty())
        {
            throw new IllegalStateException("no listener: call bindUnix or bindTcp first");
        }
        if (started)
        {
            throw new IllegalStateException("already started");
        }
        started = true;
        for (final Listener listener : listeners)
        {
            listener.thread = Thread.ofPlatform().name("nbd-accept-" + listener.name).daemon(true)
                .start(() -> acceptLoop(listener));
        }
        LOG.log(System.Logger.Level.INFO, "NBD export ''{0}'' ({1} bytes{2}) listening on {3}", context.exportName,
            context.device.size(), context.readOnly ? ", read-only" : "", describeListeners());
    }

    public NbdCounters counters()
    {
        return counters;
    }

    public Context context()
    {
        return context;
    }

    /** @return connections currently open (in handshake or transmission). */
    public int connectionCount()
    {
        return connections.size();
    }

    /**
     * Stops accepting and reading, waits until every accepted request has been answered, flushes the device so
     * that everything acknowledged is on stable storage, then closes the connections and listeners.
     */
    @Override
    public void close()
    {
        if (closing)
        {
            return;
        }
        closing = true;
        handshakeTimer.shutdownNow();
        for (final Listener listener : listeners)
        {
            closeQuietly(listener);
        }
        for (final Listener listener : listeners)
        {
            joinQuietly(listener.thread);
        }
        for (final NbdConnection connection : connections)
        {
            connection.stopReading();
        }
        final long deadline = System.nanoTime() + context.drainTimeoutNanos;
        for (final NbdConnection connection : connections)
        {
            if (!connection.awaitDrained(deadline - System.nanoTime()))
            {
                LOG.log(System.Logger.Level.WARNING, "NBD client {0} did not take its replies within the drain "
                    + "timeout; dropping them (the requests themselves completed)", connection.peer());
                connection.dropReplies();
                connection.awaitDrained(Long.MAX_VALUE);
            }
        }
        if (!context.readOnly)
        {
            flushDevice();
        }
        for (final NbdConnection connection : connections)
        {
            connection.closeResources();
        }
    }

    boolean isClosing()
    {
        return closing;
    }

    void onConnectionClosed(final NbdConnection connection)
    {
        connections.remove(connection);
        counters.onConnectionClosed();
    }

    private void acceptLoop(final Listener listener)
    {
        while (!closing)
        {
            final SocketChannel channel;
            try
            {
                channel = listener.channel.accept();
            }
            catch (final ClosedChannelException ex)
            {
                return;
            }
            catch (final IOException ex)
            {
                context.errorHandler.onError(ex);
                return;
            }
            if (listener.unixPath == null)
            {
                try
                {
                    // Replies are written whole with one gathering write: Nagle would only delay them.
                    channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
                }
                catch (final IOException ex)
                {
                    LOG.log(System.Logger.Level.DEBUG, "TCP_NODELAY: {0}", ex.getMessage());
                }
            }
            final long id = connectionIds.incrementAndGet();
            if (connections.size() >= context.maxConnections)
            {
                // Each connection owns two threads and a request budget: refuse rather than exhaust them.
                counters.onConnectionRefused();
                LOG.log(System.Logger.Level.WARNING, "NBD client {0}#{1} refused: {2} connections already open",
                    listener.name, id, context.maxConnections);
                try
                {
                    channel.close();
                }
                catch (final IOException ex)
                {
                    LOG.log(System.Logger.Level.DEBUG, "closing refused client: {0}", ex.getMessage());
                }
                continue;
            }
            final NbdConnection connection = new NbdConnection(this, context, payloadPool, counters, channel,
                listener.name + "#" + id);
            connections.add(connection);
            counters.onConnectionOpened();
            if (closing)
            {
                // close() may have already swept the set: this connection must not outlive the server.
                connection.closeResources();
                return;
            }
            connection.start();
        }
    }

    private void flushDevice()
    {
        final CountDownLatch done = new CountDownLatch(1);
        final AtomicInteger result = new AtomicInteger();
        while (!context.device.flush((cookie, value) ->
        {
            result.set(value);
            done.countDown();
        }, 0))
        {
            Thread.onSpinWait();
        }
        try
        {
            // Bounded like the drain: a device stuck below (a hung remote peer) must not hold shutdown for ever.
            if (!done.await(Math.max(context.drainTimeoutNanos, MIN_FLUSH_WAIT_NANOS), TimeUnit.NANOSECONDS))
            {
                LOG.log(System.Logger.Level.ERROR, "final flush of export ''{0}'' did not complete in time; "
                    + "acknowledged writes may not be on stable storage", context.exportName);
                return;
            }
        }
        catch (final InterruptedException ex)
        {
            Thread.currentThread().interrupt();
            return;
        }
        if (result.get() == -Errno.ESHUTDOWN)
        {
            // The device was stopped before the export (a replication stop or failover): whoever stopped it
            // flushed what lies below; there is nothing left to flush through this export.
            LOG.log(System.Logger.Level.INFO, "export ''{0}'': device already stopped, no final flush through it",
                context.exportName);
        }
        else if (result.get() < 0)
        {
            LOG.log(System.Logger.Level.ERROR, "final flush of export ''{0}'' failed: {1}; acknowledged writes "
                + "may not be on stable storage", context.exportName, Errno.name(result.get()));
        }
    }

    private String describeListeners()
    {
        final StringBuilder builder = new StringBuilder();
        for (final Listener listener : listeners)
        {
            builder.append(builder.isEmpty() ? "" : ", ").append(listener.name);
        }
        return builder.toString();
    }

    private static void closeQuietly(final Listener listener)
    {
        try
        {
            listener.channel.close();
            if (listener.unixPath != null)
            {
                Files.deleteIfExists(listener.unixPath);
            }
        }
        catch (final IOException ex)
        {
            LOG.log(System.Logger.Level.WARNING, "closing listener {0}: {1}", listener.name, ex.getMessage());
        }
    }

    private static void joinQuietly(final Thread thread)
    {
        if (thread == null)
        {
            return;
        }
        try
        {
            thread.join();
        }
        catch (final InterruptedException ex)
        {
            Thread.currentThread().interrupt();
        }
    }

    private static final class Listener
    {
        final ServerSocketChannel channel;
        final String name;
        final Path unixPath;
        Thread thread;

        Listener(final ServerSocketChannel channel, final String name, final Path unixPath)
        {
            this.channel = channel;
            this.name = name;
            this.unixPath = unixPath;
        }
    }

    /**
     * Configuration of a server, validated by {@link #conclude()} (called by the server's constructor).
     */
    private static ScheduledThreadPoolExecutor newHandshakeTimer()
    {
        final ScheduledThreadPoolExecutor timer = new ScheduledThreadPoolExecutor(
            1, runnable -> Thread.ofPlatform().name("nbd-handshake-timer").daemon(true).unstarted(runnable));
        timer.setRemoveOnCancelPolicy(true); // a finished handshake leaves nothing queued behind
        return timer;
    }

    /** Arms the handshake deadline of a new connection; the returned future is cancelled when it completes. */
    ScheduledFuture<?> armHandshakeDeadline(final Runnable onExpiry)
    {
        try
        {
            return handshakeTimer.schedule(onExpiry, context.handshakeTimeoutNanos, TimeUnit.NANOSECONDS);
        }
        catch (final RejectedExecutionException shuttingDown)
        {
            return null; // the server is closing and closes this connection anyway
        }
    }

    public static final class Context
    {
        /** Requests a connection may have in flight; the cookie space of one connection's request slots. */
        public static final int DEFAULT_MAX_IN_FLIGHT = 64;
        /** Payload bytes one connection may hold in buffers (requests received or replies not yet sent). */
        public static final long DEFAULT_MAX_CONNECTION_BYTES = 64L << 20;
        /** Bytes of payload buffers per size class for the whole server (4 KiB, 64 KiB, 1 MiB, 32 MiB). */
        public static final long DEFAULT_PAYLOAD_BUDGET = 64L << 20;
        /** Connections served at once; further clients are refused (closed) until one leaves. */
        public static final int DEFAULT_MAX_CONNECTIONS = 64;
        /** How long close() waits for clients to take their last replies before dropping them. */
        public static final long DEFAULT_DRAIN_TIMEOUT_NANOS = java.util.concurrent.TimeUnit.SECONDS.toNanos(10);
        public static final long DEFAULT_HANDSHAKE_TIMEOUT_NANOS = java.util.concurrent.TimeUnit.SECONDS.toNanos(10);
        /** Preferred block size advertised in NBD_INFO_BLOCK_SIZE. */
        public static final int PREFERRED_BLOCK_SIZE = 4096;

        private String exportName = "";
        private String description;
        private BlockDevice device;
        private boolean readOnly;
        private ErrorHandler errorHandler;
        private int maxInFlight = DEFAULT_MAX_IN_FLIGHT;
        private long maxConnectionBytes = DEFAULT_MAX_CONNECTION_BYTES;
        private long payloadBudgetBytes = DEFAULT_PAYLOAD_BUDGET;
        private long drainTimeoutNanos = DEFAULT_DRAIN_TIMEOUT_NANOS;
        private long handshakeTimeoutNanos = DEFAULT_HANDSHAKE_TIMEOUT_NANOS;
        private int maxConnections = DEFAULT_MAX_CONNECTIONS;
        private int minimumBlockSize;
        private boolean concluded;

        /** Name of the export; it also answers the empty name (the default export). */
        public Context exportName(final String exportName)
        {
            this.exportName = exportName;
            return this;
        }

        /** Human-readable description sent in NBD_INFO_DESCRIPTION and NBD_OPT_LIST; null for none. */
        public Context description(final String description)
        {
            this.description = description;
            return this;
        }

        /** The device to serve; required. Not closed by the server. */
        public Context device(final BlockDevice device)
        {
            this.device = device;
            return this;
        }

        /** Refuse write-type commands with EPERM; forced on when the device itself is read-only. */
        public Context readOnly(final boolean readOnly)
        {
            this.readOnly = readOnly;
            return this;
        }

        /** Receives unexpected exceptions (bugs, failing sockets); default logs them once each. */
        public Context errorHandler(final ErrorHandler errorHandler)
        {
            this.errorHandler = errorHandler;
            return this;
        }

        /** Requests in flight per connection, 1 to 64; further requests wait (TCP back-pressure). */
        public Context maxInFlight(final int maxInFlight)
        {
            this.maxInFlight = maxInFlight;
            return this;
        }

        /** Buffered payload bytes per connection, at least 32 MiB (one maximum-size request). */
        public Context maxConnectionBytes(final long maxConnectionBytes)
        {
            this.maxConnectionBytes = maxConnectionBytes;
            return this;
        }

        /** Payload buffer bytes per size class for the whole server; each class keeps at least one buffer. */
        public Context payloadBudgetBytes(final long payloadBudgetBytes)
        {
            this.payloadBudgetBytes = payloadBudgetBytes;
            return this;
        }

        /**
         * How long {@link NbdServer#close()} waits for clients to receive the replies of their last requests; a
         * client that stops reading cannot hold shutdown hostage. The requests themselves always complete.
         */
        public Context drainTimeoutNanos(final long drainTimeoutNanos)
        {
            this.drainTimeoutNanos = drainTimeoutNanos;
            return this;
        }

        public long drainTimeoutNanos()
        {
            return drainTimeoutNanos;
        }

        /**
         * How long a client may take from connecting to entering transmission (qemu-nbd's handshake limit is 10 s
         * as well): a client that connects and then says nothing would otherwise hold two threads and a
         * connection place for ever.
         */
        public Context handshakeTimeoutNanos(final long handshakeTimeoutNanos)
        {
            this.handshakeTimeoutNanos = handshakeTimeoutNanos;
            return this;
        }

        public long handshakeTimeoutNanos()
        {
            return handshakeTimeoutNanos;
        }

        /** Connections served at once (each costs two threads); further clients are closed at once. */
        public Context maxConnections(final int maxConnections)
        {
            this.maxConnections = maxConnections;
            return this;
        }

        public int maxConnections()
        {
            return maxConnections;
        }

        public String exportName()
        {
            return exportName;
        }

        public String description()
        {
            return description;
        }

        public BlockDevice device()
        {
            return device;
        }

        public boolean readOnly()
        {
            return readOnly;
        }

        public ErrorHandler errorHandler()
        {
            return errorHandler;
        }

        public int maxInFlight()
        {
            return maxInFlight;
        }

        public long maxConnectionBytes()
        {
            return maxConnectionBytes;
        }

        public long payloadBudgetBytes()
        {
            return payloadBudgetBytes;
        }

        /** @return the minimum block size advertised: the device alignment (1 for buffered files). */
        public int minimumBlockSize()
        {
            return minimumBlockSize;
        }

        /** Validates the options and derives the rest; idempotent. */
        public Context conclude()
        {
            if (concluded)
            {
                return this;
            }
            if (device == null)
            {
                throw new IllegalArgumentException("device is required");
            }
            if (exportName == null || exportName.getBytes(StandardCharsets.UTF_8).length > NbdProtocol.MAX_STRING
                || exportName.indexOf('\0') >= 0)
            {
                throw new IllegalArgumentException("export name must be at most 4096 UTF-8 bytes without NUL");
            }
            if (description != null && (description.getBytes(StandardCharsets.UTF_8).length > NbdProtocol.MAX_STRING
                || description.indexOf('\0') >= 0))
            {
                throw new IllegalArgumentException("description must be at most 4096 UTF-8 bytes without NUL");
            }
            if (maxInFlight < 1 || maxInFlight > 64)
            {
                throw new IllegalArgumentException("maxInFlight must be in [1, 64]: " + maxInFlight);
            }
            if (maxConnectionBytes < NbdProtocol.MAX_PAYLOAD)
            {
                throw new IllegalArgumentException("maxConnectionBytes must be >= 32 MiB: " + maxConnectionBytes);
            }
            if (maxConnections < 1)
            {
                throw new IllegalArgumentException("maxConnections must be positive: " + maxConnections);
            }
            if (handshakeTimeoutNanos <= 0)
            {
                throw new IllegalArgumentException("handshakeTimeoutNanos must be > 0: " + handshakeTimeoutNanos);
            }
            if (drainTimeoutNanos < 0)
            {
                throw new IllegalArgumentException("drainTimeoutNanos must be >= 0: " + drainTimeoutNanos);
            }
            if (payloadBudgetBytes < 1)
            {
                throw new IllegalArgumentException("payloadBudgetBytes must be positive: " + payloadBudgetBytes);
            }
            final int alignment = Math.max(1, device.alignment());
            if (Integer.bitCount(alignment) != 1 || alignment > 65536)
            {
                throw new IllegalArgumentException("device alignment must be a power of two <= 64 KiB: " + alignment);
            }
            minimumBlockSize = alignment;
            readOnly |= device.isReadOnly();
            if (errorHandler == null)
            {
                errorHandler = new LoggingErrorHandler();
            }
            concluded = true;
            return this;
        }
    }

    /** Default error handler: one log line with the stack trace per distinct exception type and message. */
    static final class LoggingErrorHandler implements ErrorHandler
    {
        private final Set<String> seen = ConcurrentHashMap.newKeySet();

        @Override
        public void onError(final Throwable throwable)
        {
            if (seen.add(throwable.getClass().getName() + ':' + throwable.getMessage()))
            {
                LOG.log(System.Logger.Level.ERROR, "unexpected error in the NBD server", throwable);
            }
        }
    }
}
