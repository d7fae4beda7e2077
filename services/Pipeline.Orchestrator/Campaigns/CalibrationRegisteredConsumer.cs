using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator.Campaigns;

/// <summary>
/// A calibration was registered (by the calibration system on the bus, or through the admin API): it is
/// recorded, and every file held for it in the runs it covers is told to look again and start.
/// </summary>
public sealed class CalibrationRegisteredConsumer(ICampaignStore calibrations, IFileSagaStore sagas, CampaignDirectory campaigns, TimeProvider time, ILogger<CalibrationRegisteredConsumer> logger)
    : IConsumer<CalibrationRegistered>
{
    public async Task Consume(ConsumeContext<CalibrationRegistered> context)
    {
        var calibration = context.Message;
        if (!CampaignValidation.IsName(calibration.Tag) || calibration.RunFrom <= 0 || calibration.RunTo < calibration.RunFrom)
        {
            // Not retried: an invalid announcement goes to the error queue with this reason.
            throw new ArgumentException($"Calibration announcement rejected: tag '{calibration.Tag}' for runs {calibration.RunFrom}-{calibration.RunTo} "
                + "needs a tag of 1-64 letters, digits, '.', '_' or '-' and a run range with 0 < from <= to.");
        }
        await calibrations.AddCalibrationAsync(new CalibrationRecord(calibration.Tag, calibration.RunFrom, calibration.RunTo, calibration.RegisteredBy, time.GetUtcNow()),
            context.CancellationToken);
        var released = 0;
        foreach (var campaign in (await campaigns.ListAsync(context.CancellationToken)).Where(c => c.Definition.RequireCalibration && c.Definition.CalibrationTag == calibration.Tag))
        {
            string? after = null;
            do
            {
                var page = await sagas.ListAsync(new FileQuery(campaign.Name, FileStates.AwaitingCalibration, calibration.RunFrom, calibration.RunTo, After: after, Limit: 1000),
                    context.CancellationToken);
                foreach (var file in page.Files)
                {
                    await context.PublishBoundedAsync(new CheckCalibration(file.Id, file.Run, file.Stream, file.Campaign), context.CancellationToken);
                    released++;
                }
                after = page.Next;
            }
            while (after is not null);
        }
        logger.LogInformation("Calibration {Tag} for runs {From}-{To} registered by {By}: {Files} held files told to start",
            calibration.Tag, calibration.RunFrom, calibration.RunTo, calibration.RegisteredBy, released);
    }
}

public sealed class CalibrationRegisteredConsumerDefinition() : QueueConsumerDefinition<CalibrationRegisteredConsumer>(QueueName, [100, 500, 2000, 10000])
{
    public const string QueueName = "calibration-registered";
}
