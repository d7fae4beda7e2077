namespace Pipeline.Production.Control;

/// <summary>The work that runs on one instance of the whole system at a time, by the names of its leases.</summary>
public static class Singletons
{
    /// <summary>Shares the reconstruction slots between campaigns: the in-flight bound and fair share are global.</summary>
    public const string Dispatcher = "dispatcher";

    /// <summary>Registers reprocessing and Monte Carlo campaigns' files batch by batch.</summary>
    public const string CampaignFeeder = "campaign-feeder";

    /// <summary>Tells stalled files' sagas to re-issue their step.</summary>
    public const string Watchdog = "watchdog";

    /// <summary>Compares the catalog with the archive areas.</summary>
    public const string Reconciliation = "reconciliation";

    /// <summary>Drops area reservations whose file is gone.</summary>
    public const string AreaLedgerSweep = "area-ledger-sweep";

    /// <summary>Raises and resolves the alerts.</summary>
    public const string HealthWatch = "health-watch";
}
