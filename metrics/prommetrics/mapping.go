package prommetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	mn "github.com/shardflow/shardflow/internal/metricnames"
)

// The names, help, labels and buckets are shardflow's one table,
// internal/metricnames (the standard-library exporter of the examples uses
// it too); this file builds the collectors from it. The methods in
// producer.go, consumer.go and lease.go only feed these collectors.

const (
	lStream = mn.Stream
	lApp    = mn.App
	lPass   = mn.Pass
)

// producerVecs are the KPL's metrics.
type producerVecs struct {
	received, receivedBytes        *prometheus.CounterVec
	pending, pendingBytes          *prometheus.GaugeVec
	userPut, userPutBytes          *prometheus.CounterVec
	kinesisPut, kinesisPutBytes    *prometheus.CounterVec
	userPerKinesis                 *prometheus.HistogramVec
	failed, expired                *prometheus.CounterVec
	bufferingTime, retries         *prometheus.HistogramVec
	requestTime, kinesisPerRequest *prometheus.HistogramVec
	errorsByCode                   *prometheus.CounterVec
}

func newProducerVecs() producerVecs {
	return producerVecs{
		received:          counter(mn.ProducerReceived),
		receivedBytes:     counter(mn.ProducerReceivedBytes),
		pending:           gauge(mn.ProducerPending),
		pendingBytes:      gauge(mn.ProducerPendingBytes),
		userPut:           counter(mn.ProducerUserPut),
		userPutBytes:      counter(mn.ProducerUserPutBytes),
		kinesisPut:        counter(mn.ProducerKinesisPut),
		kinesisPutBytes:   counter(mn.ProducerKinesisPutBytes),
		userPerKinesis:    histogram(mn.ProducerUserPerKinesis),
		failed:            counter(mn.ProducerFailed),
		expired:           counter(mn.ProducerExpired),
		bufferingTime:     histogram(mn.ProducerBufferingTime),
		retries:           histogram(mn.ProducerRetries),
		requestTime:       histogram(mn.ProducerRequestTime),
		kinesisPerRequest: histogram(mn.ProducerKinesisPerRequest),
		errorsByCode:      counter(mn.ProducerErrorsByCode),
	}
}

func (v *producerVecs) register(reg prometheus.Registerer) error {
	r := registrar{reg: reg}
	use(&r, &v.received)
	use(&r, &v.receivedBytes)
	use(&r, &v.pending)
	use(&r, &v.pendingBytes)
	use(&r, &v.userPut)
	use(&r, &v.userPutBytes)
	use(&r, &v.kinesisPut)
	use(&r, &v.kinesisPutBytes)
	use(&r, &v.userPerKinesis)
	use(&r, &v.failed)
	use(&r, &v.expired)
	use(&r, &v.bufferingTime)
	use(&r, &v.retries)
	use(&r, &v.requestTime)
	use(&r, &v.kinesisPerRequest)
	use(&r, &v.errorsByCode)
	return r.err
}

// consumerVecs are KCL's ProcessTask and worker metrics.
type consumerVecs struct {
	processed, processedBytes *prometheus.CounterVec
	processTime               *prometheus.HistogramVec
	behindLatest              *prometheus.GaugeVec
	processorErrors           *prometheus.CounterVec
	outOfRange                *prometheus.CounterVec
	throttles, expiredIters   *prometheus.CounterVec
	retentionRestarts         *prometheus.CounterVec
	leasesHeld                *prometheus.GaugeVec
	leasesTaken, leasesLost   *prometheus.CounterVec
}

func newConsumerVecs() consumerVecs {
	return consumerVecs{
		processed:         counter(mn.ConsumerProcessed),
		processedBytes:    counter(mn.ConsumerProcessedBytes),
		processTime:       histogram(mn.ConsumerProcessTime),
		behindLatest:      gauge(mn.ConsumerBehindLatest),
		processorErrors:   counter(mn.ConsumerProcessorErrors),
		outOfRange:        counter(mn.ConsumerOutOfRange),
		throttles:         counter(mn.ConsumerThrottles),
		expiredIters:      counter(mn.ConsumerExpiredIterators),
		retentionRestarts: counter(mn.ConsumerRetentionRestarts),
		leasesHeld:        gauge(mn.ConsumerLeasesHeld),
		leasesTaken:       counter(mn.ConsumerLeasesTaken),
		leasesLost:        counter(mn.ConsumerLeasesLost),
	}
}

func (v *consumerVecs) register(reg prometheus.Registerer) error {
	r := registrar{reg: reg}
	use(&r, &v.processed)
	use(&r, &v.processedBytes)
	use(&r, &v.processTime)
	use(&r, &v.behindLatest)
	use(&r, &v.processorErrors)
	use(&r, &v.outOfRange)
	use(&r, &v.throttles)
	use(&r, &v.expiredIters)
	use(&r, &v.retentionRestarts)
	use(&r, &v.leasesHeld)
	use(&r, &v.leasesTaken)
	use(&r, &v.leasesLost)
	return r.err
}

// leaseVecs are KCL's RenewAllLeases and TakeLeases metrics.
type leaseVecs struct {
	renewTime                             *prometheus.HistogramVec
	renewed, renewSkipped, lost, renewErr *prometheus.CounterVec
	held                                  *prometheus.GaugeVec
	takeTime                              *prometheus.HistogramVec
	scanErrors                            *prometheus.CounterVec
	taken, stolen, takeErr                *prometheus.CounterVec
	workers, target, tableLeases          *prometheus.GaugeVec
}

func newLeaseVecs() leaseVecs {
	return leaseVecs{
		renewTime:    histogram(mn.LeaseRenewTime),
		renewed:      counter(mn.LeaseRenewed),
		renewSkipped: counter(mn.LeaseRenewSkipped),
		lost:         counter(mn.LeaseLost),
		renewErr:     counter(mn.LeaseRenewErrors),
		held:         gauge(mn.LeaseHeld),
		takeTime:     histogram(mn.LeaseTakeTime),
		scanErrors:   counter(mn.LeaseScanErrors),
		taken:        counter(mn.LeaseTaken),
		stolen:       counter(mn.LeaseStolen),
		takeErr:      counter(mn.LeaseTakeErrors),
		workers:      gauge(mn.LeaseWorkers),
		target:       gauge(mn.LeaseTarget),
		tableLeases:  gauge(mn.LeaseTableLeases),
	}
}

func (v *leaseVecs) register(reg prometheus.Registerer) error {
	r := registrar{reg: reg}
	use(&r, &v.renewTime)
	use(&r, &v.renewed)
	use(&r, &v.renewSkipped)
	use(&r, &v.lost)
	use(&r, &v.renewErr)
	use(&r, &v.held)
	use(&r, &v.takeTime)
	use(&r, &v.scanErrors)
	use(&r, &v.taken)
	use(&r, &v.stolen)
	use(&r, &v.takeErr)
	use(&r, &v.workers)
	use(&r, &v.target)
	use(&r, &v.tableLeases)
	return r.err
}

func counter(d mn.Def) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: mn.Namespace, Subsystem: d.Subsystem, Name: d.Name, Help: d.Help}, d.Labels)
}

func gauge(d mn.Def) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: mn.Namespace, Subsystem: d.Subsystem, Name: d.Name, Help: d.Help}, d.Labels)
}

func histogram(d mn.Def) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: mn.Namespace, Subsystem: d.Subsystem, Name: d.Name, Help: d.Help, Buckets: d.Buckets}, d.Labels)
}
