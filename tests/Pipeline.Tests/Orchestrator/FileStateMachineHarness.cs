using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Pipeline.Contracts;
using Pipeline.Orchestrator;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Orchestrator;

/// <summary>
/// The file state machine on MassTransit's test harness, persisted through the project's own saga
/// repository into a real SQLite store, with a clock the test moves by hand.
/// </summary>
public sealed class FileStateMachineHarness : IAsyncDisposable
{
    private readonly TempDirectory _folder;
    private readonly ServiceProvider _provider;

    private FileStateMachineHarness(TempDirectory folder, ServiceProvider provider)
    {
        _folder = folder;
        _provider = provider;
    }

    public ITestHarness Harness => _provider.GetRequiredService<ITestHarness>();

    public IServiceProvider Provider => _provider;

    public IFileSagaStore Store => _provider.GetRequiredService<IFileSagaStore>();

    public FakeTimeProvider Time => _provider.GetRequiredService<FakeTimeProvider>();

    public FileStateMachine Machine => _provider.GetRequiredService<FileStateMachine>();

    public ISingletonLeaseStore Singletons => _provider.GetRequiredService<ISingletonLeaseStore>();

    public const int MaxAttempts = 2;

    public static async Task<FileStateMachineHarness> StartAsync()
    {
        var folder = new TempDirectory();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<PauseState>();
        services.AddSingleton(new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture)));
        services.AddSingleton<TimeProvider>(sp => sp.GetRequiredService<FakeTimeProvider>());
        services.AddOptions<OrchestratorOptions>().Configure(o => o.MaxStalls = 2);
        services.AddSingleton(StoreBackend.Sqlite(Path.Combine(folder.Path, "pipeline.db")));
        services.AddStore<IFileSagaStore>();
        services.AddStore<ISingletonLeaseStore>();
        // What the machine is told with each message: the campaign's time limit comes from its measured run times.
        services.AddOptions<CampaignOptions>().Configure(o => o.MaxAttempts = MaxAttempts);
        services.AddStore<ICampaignStore>().AddStore<IRunTimeStore>();
        services.AddSingleton<CampaignDirectory>();
        services.AddOptions<WallTimeOptions>();
        services.AddSingleton<CampaignWallTimes>();
        services.AddMassTransitTestHarness(bus =>
            bus.AddSagaStateMachine<FileStateMachine, FileState, FileStateDefinition>().StoreRepository());
        var provider = services.BuildServiceProvider(validateScopes: true);
        await provider.GetRequiredService<ITestHarness>().Start();
        return new FileStateMachineHarness(folder, provider);
    }

    /// <summary>The sample prompt campaign's terms, with an attempt budget of <see cref="MaxAttempts"/>.</summary>
    public static CampaignTerms Terms => new CampaignOptions { MaxAttempts = MaxAttempts }.ToDefinition().Terms();

    public static FileRegistered Registration(string name = "raw/run001000/physics/run001000_physics_0001.raw") =>
        new(FileIds.For("prompt", name), 1000, "physics", "prompt", name, 1, 1234, "0a0b0c0d", 500, Terms);

    public Task Publish<T>(T message)
        where T : class => Harness.Bus.Publish(message);

    public async Task<FileState> WaitFor(Guid id, Func<FileState, bool> condition, string what) =>
        (await Eventually.Until(() => Store.LoadAsync(id, CancellationToken.None), s => s is not null && condition(s), TimeSpan.FromSeconds(30), what))!;

    public Task<FileState> WaitForState(Guid id, string state) => WaitFor(id, s => s.CurrentState == state, $"state {state}");

    public async Task<ReconstructionClaimed> Claim(FileState file, int attempt, string worker, bool renewal = false)
    {
        var client = Harness.GetRequestClient<ClaimReconstruction>();
        var response = await client.GetResponse<ReconstructionClaimed>(
            new ClaimReconstruction(file.CorrelationId, file.Run, file.Stream, file.Campaign, attempt, worker, renewal));
        return response.Message;
    }

    /// <summary>Drives a registered file to Reconstructing by the given worker and returns it.</summary>
    public async Task<FileState> Reconstructing(FileRegistered registration, string worker = "worker-1")
    {
        await Publish(registration);
        var staging = await WaitForState(registration.FileId, "Staging");
        await Publish(new FileStaged(registration.FileId, 1000, "physics", "prompt", staging.Attempt, "prompt/" + registration.LogicalName, 1234, "0a0b0c0d"));
        await WaitForState(registration.FileId, "Staged");
        var queued = await Dispatch(registration.FileId);
        Assert.True((await Claim(queued, queued.Attempt, worker)).Granted);
        return await WaitForState(registration.FileId, "Reconstructing");
    }

    /// <summary>Gives a staged file its reconstruction slot, as the dispatcher does, and returns it queued.</summary>
    public async Task<FileState> Dispatch(Guid id)
    {
        var staged = await Store.LoadAsync(id, CancellationToken.None);
        await Publish(new DispatchReconstruction(id, staged!.Run, staged.Stream, staged.Campaign));
        return await WaitForState(id, "Queued");
    }

    public static OutputFile Output(Guid fileId, int attempt, string dataset) =>
        new($"{fileId:N}.a{attempt}.{dataset}", dataset, $"jobs/x/{dataset}.evt", 100, "00000001", 10, 1000, 1);

    public async ValueTask DisposeAsync()
    {
        await Harness.Stop();
        await _provider.DisposeAsync();
        _folder.Dispose();
    }
}
