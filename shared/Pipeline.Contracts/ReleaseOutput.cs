namespace Pipeline.Contracts;

/// <summary>One output a release reports in its manifest (<see cref="ReleaseManifest"/>): its dataset, its file name in the output folder, its events.</summary>
public sealed record ReleaseOutput(string Dataset, string File, long Events);
