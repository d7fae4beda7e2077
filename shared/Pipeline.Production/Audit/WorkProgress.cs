namespace Pipeline.Production.Audit;

/// <summary>How far a long check has got: <paramref name="Done"/> of <paramref name="Total"/> items of its current step.</summary>
public sealed record WorkProgress(string Step, long Done, long Total);
