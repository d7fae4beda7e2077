namespace Pipeline.Production.State;

/// <summary>What operators have paused, for every instance of every service to see.</summary>
public interface IControlStore
{
    /// <summary>Pauses a stage (by its queue name); pausing one already paused keeps who paused it first.</summary>
    Task PauseAsync(string stage, string by, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Resumes a stage; true if it was paused.</summary>
    Task<bool> ResumeAsync(string stage, CancellationToken cancellationToken);

    Task<IReadOnlyList<PausedStage>> ListPausedAsync(CancellationToken cancellationToken);
}

public sealed record PausedStage(string Stage, string By, DateTimeOffset Since);

/// <summary>The concern's store among the backend's, by name.</summary>
public static class ControlStoreAccess
{
    extension(StoreBackend backend)
    {
        public IControlStore Control => backend.Get<IControlStore>();
    }
}
