package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

// sarama 1.22 (Debian's) with the Kafka 2.1 protocol: RecordBatch v2,
// Produce v3+, Fetch v4+, JoinGroup v1.
func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.ClientID = "weir-compat-sarama"
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	// With no retention sarama 1.22 commits with OffsetCommit v1, which
	// Kafka 4 (and Weir) no longer serve; a retention makes it send v2.
	cfg.Consumer.Offsets.Retention = 24 * time.Hour
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = time.Second
	cfg.Admin.Timeout = timeout
	return cfg
}

// kerr is the Kafka error code an admin call failed with.
func kerr(err error) sarama.KError {
	switch e := err.(type) {
	case sarama.KError:
		return e
	case *sarama.TopicError:
		return e.Err
	case *sarama.TopicPartitionError:
		return e.Err
	}
	return -1
}

// describeConfigs asks with DescribeConfigs v1: sarama 1.22's
// ClusterAdmin.DescribeConfig sends v0, which Kafka 4 (and Weir) no longer
// serve, so this uses the broker-level request of the same library.
func describeConfigs(client sarama.Client, topic string) map[string]*sarama.ConfigEntry {
	b, err := client.Controller()
	must(err, "sarama Controller")
	resp, err := b.DescribeConfigs(&sarama.DescribeConfigsRequest{
		Version:   1,
		Resources: []*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic}},
	})
	must(err, "sarama DescribeConfigs")
	check(len(resp.Resources) == 1 && resp.Resources[0].ErrorCode == 0, "sarama DescribeConfigs: %+v", resp.Resources)
	out := map[string]*sarama.ConfigEntry{}
	for _, e := range resp.Resources[0].Configs {
		out[e.Name] = e
	}
	return out
}

func topicNames(client sarama.Client) map[string]bool {
	must(client.RefreshMetadata(), "sarama RefreshMetadata (all topics)")
	topics, err := client.Topics()
	must(err, "sarama Topics")
	out := map[string]bool{}
	for _, t := range topics {
		out[t] = true
	}
	return out
}

func saramaAdmin(client sarama.Client, admin sarama.ClusterAdmin, prefix string) {
	topic := prefix + "-admin"
	str := func(s string) *string { return &s }
	must(admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1, ConfigEntries: map[string]*string{
		"cleanup.policy": str("compact"), "min.cleanable.dirty.ratio": str("0.3"), "retention.ms": str("86400000"),
	}}, false), "sarama CreateTopic with configs")
	configs := describeConfigs(client, topic)
	for name, value := range map[string]string{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.3", "retention.ms": "86400000"} {
		e := configs[name]
		check(e != nil && e.Value == value && e.Source == sarama.SourceTopic && !e.Default, "sarama DescribeConfigs %s: %+v", name, e)
	}
	check(configs["segment.bytes"] != nil && configs["segment.bytes"].Source != sarama.SourceTopic, "sarama DescribeConfigs segment.bytes: %+v", configs["segment.bytes"])

	// AlterConfigs replaces the whole set: min.cleanable.dirty.ratio, left out, goes back to its default.
	must(admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{
		"cleanup.policy": str("compact"), "retention.ms": str("3600000"),
	}, false), "sarama AlterConfig")
	configs = describeConfigs(client, topic)
	check(configs["retention.ms"].Value == "3600000", "sarama after AlterConfig: retention.ms %+v", configs["retention.ms"])
	ratio := configs["min.cleanable.dirty.ratio"]
	check(ratio.Value == "0.5" && ratio.Source != sarama.SourceTopic, "sarama after AlterConfig without it: min.cleanable.dirty.ratio %+v", ratio)

	must(admin.CreatePartitions(topic, 5, nil, false), "sarama CreatePartitions")
	must(client.RefreshMetadata(topic), "sarama RefreshMetadata")
	parts, err := client.Partitions(topic)
	must(err, "sarama Partitions")
	check(len(parts) == 5, "sarama after CreatePartitions: %d partitions", len(parts))
	err = admin.CreatePartitions(topic, 3, nil, false)
	check(kerr(err) == sarama.ErrInvalidPartitions, "sarama CreatePartitions to fewer: %v, want INVALID_PARTITIONS", err)
	err = admin.CreateTopic(prefix+"-bad-config", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"no.such.config": str("1")}}, false)
	check(kerr(err) == sarama.ErrInvalidConfig, "sarama CreateTopic with an unknown config: %v, want INVALID_CONFIG", err)

	must(admin.DeleteTopic(topic), "sarama DeleteTopic")
	deadline := time.Now().Add(timeout)
	for topicNames(client)[topic] {
		check(time.Now().Before(deadline), "sarama: %s still listed after DeleteTopic", topic)
		time.Sleep(200 * time.Millisecond)
	}
}

type groupHandler struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.seen[string(m.Value)] = true
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func (h *groupHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

func saramaRoundtrip(client sarama.Client, admin sarama.ClusterAdmin, prefix string) {
	topic := prefix + "-roundtrip"
	const partitions, records = 3, 600
	must(admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false), "sarama CreateTopic")
	producer, err := sarama.NewSyncProducerFromClient(client)
	must(err, "sarama NewSyncProducer")
	var msgs []*sarama.ProducerMessage
	for i := 0; i < records; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("key-%d", i%31)),
			Value: sarama.StringEncoder(fmt.Sprintf("value-%d", i))})
	}
	must(producer.SendMessages(msgs), "sarama SendMessages")
	for _, m := range msgs {
		key, _ := m.Key.Encode()
		check(m.Partition == fnv1aPartition(key, partitions), "sarama: key %s on partition %d, FNV-1a says %d", key, m.Partition, fnv1aPartition(key, partitions))
	}

	group := prefix + "-group"
	handler := &groupHandler{seen: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		g, err := sarama.NewConsumerGroup([]string{client.Brokers()[0].Addr()}, group, saramaConfig())
		must(err, "sarama NewConsumerGroup")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer g.Close()
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, handler); err != nil && ctx.Err() == nil {
					fail("sarama group Consume: %v", err)
				}
			}
		}()
	}
	deadline := time.Now().Add(2 * timeout)
	for handler.count() < records {
		check(time.Now().Before(deadline), "sarama: the group read %d of %d", handler.count(), records)
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait() // closing the members commits what they marked

	committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	must(err, "sarama ListConsumerGroupOffsets")
	for p := int32(0); p < partitions; p++ {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		must(err, "sarama GetOffset")
		b := committed.GetBlock(topic, p)
		check(b != nil && b.Offset == end, "sarama: partition %d committed %+v, end offset %d", p, b, end)
	}
	groups, err := admin.ListConsumerGroups()
	must(err, "sarama ListConsumerGroups")
	check(groups[group] == "consumer", "sarama ListConsumerGroups: %v", groups)
}

func saramaCodecs(admin sarama.ClusterAdmin, addr, prefix string) {
	byName := map[string]sarama.CompressionCodec{"gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
		"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}
	for _, codec := range codecs {
		topic := codecTopic(prefix, "sarama", codec)
		must(admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: codecPartitions, ReplicationFactor: 1}, false), "sarama CreateTopic "+topic)
		cfg := saramaConfig()
		cfg.Producer.Compression = byName[codec]
		producer, err := sarama.NewSyncProducer([]string{addr}, cfg)
		must(err, "sarama NewSyncProducer "+codec)
		var msgs []*sarama.ProducerMessage
		for i := 0; i < codecRecords; i++ {
			key, value := codecRecord("sarama", codec, i)
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(key), Value: sarama.ByteEncoder(value)})
		}
		must(producer.SendMessages(msgs), "sarama SendMessages "+codec)
		for _, m := range msgs {
			key, _ := m.Key.Encode()
			check(m.Partition == fnv1aPartition(key, codecPartitions), "sarama %s: key %s on partition %d", codec, key, m.Partition)
		}
		must(producer.Close(), "sarama producer Close")
	}
}

func saramaScenario(bootstrap, prefix string) {
	client, err := sarama.NewClient([]string{bootstrap}, saramaConfig())
	must(err, "sarama NewClient")
	admin, err := sarama.NewClusterAdmin([]string{bootstrap}, saramaConfig())
	must(err, "sarama NewClusterAdmin")
	saramaAdmin(client, admin, prefix)
	saramaRoundtrip(client, admin, prefix)
	saramaCodecs(admin, bootstrap, prefix)
	all := topicNames(client)
	check(all[prefix+"-roundtrip"] && all[codecTopic(prefix, "sarama", "zstd")], "sarama: all-topics metadata lacks this run's topics")
	admin.Close()
	client.Close()
	fmt.Printf("ok sarama %s: admin (create with configs, describe, alter, create partitions, delete), all-topics metadata, "+
		"produce on FNV-1a partitions, a group of 2 read and committed, codec topics %v\n", "1.22", codecs)
}
