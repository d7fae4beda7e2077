namespace Pipeline.Contracts;

/// <summary>
/// Calibration constants under <paramref name="Tag"/> now exist for runs <paramref name="RunFrom"/> to
/// <paramref name="RunTo"/>: files held for them may start. From the calibration system or the admin API.
/// </summary>
public sealed record CalibrationRegistered(string Tag, int RunFrom, int RunTo, string RegisteredBy);

/// <summary>The calibration a held file waits for may be there now: check again and start if it is.</summary>
public sealed record CheckCalibration(Guid FileId, int Run, string Stream, string Campaign) : IFileMessage;

/// <summary>
/// A reconstruction slot is the file's, by its campaign's share: issue its reconstruction now. <paramref name="Fence"/> is
/// the dispatcher's lease token: a dispatch from a dispatcher since deposed (an older token) is refused.
/// </summary>
public sealed record DispatchReconstruction(Guid FileId, int Run, string Stream, string Campaign, long? Fence = null) : IFileMessage;

/// <summary>
/// The file's campaign was cancelled: a file not yet reconstructing ends here (its staged copy is given
/// back); one already reconstructing finishes, and its outputs are merged and archived as usual.
/// </summary>
public sealed record CancelFile(Guid FileId, int Run, string Stream, string Campaign, string RequestedBy) : IFileMessage;

/// <summary>A staged copy nobody will reconstruct (its campaign was cancelled): delete it and give its room back.</summary>
public sealed record DiscardStagedFile(Guid FileId, int Run, string Stream, string Campaign, string CachedName) : IFileMessage;
