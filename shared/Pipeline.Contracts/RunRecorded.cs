namespace Pipeline.Contracts;

/// <summary>
/// The data-acquisition system's announcement that a run's raw files are in the archive.
/// Accepted as plain JSON (camelCase) or inside a MassTransit envelope.
/// </summary>
public sealed record RunRecorded
{
    public int Run { get; init; }
    public DateTimeOffset? RecordedAt { get; init; }
    public IReadOnlyList<RawFileRecord>? Files { get; init; }

    /// <summary>
    /// The run's conditions as the detector recorded them (beam energy, magnetic field, ...): what a Monte Carlo
    /// campaign simulates the run under.
    /// </summary>
    public IReadOnlyDictionary<string, string>? Conditions { get; init; }
}

/// <summary>One raw file of a run: its name inside the archive area and its catalogued checksum.</summary>
public sealed record RawFileRecord
{
    public string? Name { get; init; }
    public string? Stream { get; init; }
    public int Section { get; init; }
    public long Size { get; init; }
    public string? Adler32 { get; init; }
    public long Events { get; init; }
}
