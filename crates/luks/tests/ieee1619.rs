//! XTS-AES through the public sector and block API, against the test
//! vectors of IEEE Std 1619-2007, Annex B (vectors 4 to 11 and 14: 512-byte
//! data units, AES-128 and AES-256 keys, data-unit sequence numbers from 0
//! up to 0xff_ffff_ffff). The data-unit sequence number is the payload
//! sector number: aes-xts-plain64 uses the same little-endian tweak.
//!
//! Vectors 4-6 and 7-9 chain: each one's plaintext is the previous one's
//! ciphertext, so three of them are also one run of three sectors.

use luks::{Cipher, MasterKey, BLOCK_SIZE, SECTOR_SIZE};

const KEY_128: &str = "27182818284590452353602874713526\
    31415926535897932384626433832795";
const KEY_256: &str = "2718281828459045235360287471352662497757247093699959574966967627\
    3141592653589793238462643383279502884197169399375105820974944592";

const V4_CT: &str = "\
    27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89cc78cf7f5e543445f8333d8fa7f560000\
    05279fa5d8b5e4ad40e736ddb4d35412328063fd2aab53e5ea1e0a9f332500a5df9487d07a5c92cc512c8866c7e860ce\
    93fdf166a24912b422976146ae20ce846bb7dc9ba94a767aaef20c0d61ad02655ea92dc4c4e41a8952c651d33174be51\
    a10c421110e6d81588ede82103a252d8a750e8768defffed9122810aaeb99f9172af82b604dc4b8e51bcb08235a6f434\
    1332e4ca60482a4ba1a03b3e65008fc5da76b70bf1690db4eae29c5f1badd03c5ccf2a55d705ddcd86d449511ceb7ec3\
    0bf12b1fa35b913f9f747a8afd1b130e94bff94effd01a91735ca1726acd0b197c4e5b03393697e126826fb6bbde8ecc\
    1e08298516e2c9ed03ff3c1b7860f6de76d4cecd94c8119855ef5297ca67e9f3e7ff72b1e99785ca0a7e7720c5b36dc6\
    d72cac9574c8cbbc2f801e23e56fd344b07f22154beba0f08ce8891e643ed995c94d9a69c9f1b5f499027a78572aeebd\
    74d20cc39881c213ee770b1010e4bea718846977ae119f7a023ab58cca0ad752afe656bb3c17256a9f6e9bf19fdd5a38\
    fc82bbe872c5539edb609ef4f79c203ebb140f2e583cb2ad15b4aa5b655016a8449277dbd477ef2c8d6c017db738b18d\
    eb4a427d1923ce3ff262735779a418f20a282df920147beabe421ee5319d0568";
const V5_CT: &str = "\
    264d3ca8512194fec312c8c9891f279fefdd608d0c027b60483a3fa811d65ee59d52d9e40ec5672d81532b38b6b089ce\
    951f0f9c35590b8b978d175213f329bb1c2fd30f2f7f30492a61a532a79f51d36f5e31a7c9a12c286082ff7d2394d18f\
    783e1a8e72c722caaaa52d8f065657d2631fd25bfd8e5baad6e527d763517501c68c5edc3cdd55435c532d7125c8614d\
    eed9adaa3acade5888b87bef641c4c994c8091b5bcd387f3963fb5bc37aa922fbfe3df4e5b915e6eb514717bdd2a7407\
    9a5073f5c4bfd46adf7d282e7a393a52579d11a028da4d9cd9c77124f9648ee383b1ac763930e7162a8d37f350b2f74b\
    8472cf09902063c6b32e8c2d9290cefbd7346d1c779a0df50edcde4531da07b099c638e83a755944df2aef1aa31752fd\
    323dcb710fb4bfbb9d22b925bc3577e1b8949e729a90bbafeacf7f7879e7b1147e28ba0bae940db795a61b15ecf4df8d\
    b07b824bb062802cc98a9545bb2aaeed77cb3fc6db15dcd7d80d7d5bc406c4970a3478ada8899b329198eb61c193fb62\
    75aa8ca340344a75a862aebe92eee1ce032fd950b47d7704a3876923b4ad62844bf4a09c4dbe8b4397184b7471360c95\
    64880aedddb9baa4af2e75394b08cd32ff479c57a07d3eab5d54de5f9738b8d27f27a9f0ab11799d7b7ffefb2704c95c\
    6ad12c39f1e867a4b7b1d7818a4b753dfd2a89ccb45e001a03a867b187f225dd";
const V6_CT: &str = "\
    fa762a3680b76007928ed4a4f49a9456031b704782e65e16cecb54ed7d017b5e18abd67b338e81078f21edb7868d901e\
    be9c731a7c18b5e6dec1d6a72e078ac9a4262f860beefa14f4e821018272e411a951502b6e79066e84252c3346f3aa62\
    344351a291d4bedc7a07618bdea2af63145cc7a4b8d4070691ae890cd65733e7946e9021a1dffc4c59f159425ee6d50c\
    a9b135fa6162cea18a939838dc000fb386fad086acce5ac07cb2ece7fd580b00cfa5e98589631dc25e8e2a3daf2ffdec\
    26531659912c9d8f7a15e5865ea8fb5816d6207052bd7128cd743c12c8118791a4736811935eb982a532349e31dd401e\
    0b660a568cb1a4711f552f55ded59f1f15bf7196b3ca12a91e488ef59d64f3a02bf45239499ac6176ae321c4a211ec54\
    5365971c5d3f4f09d4eb139bfdf2073d33180b21002b65cc9865e76cb24cd92c874c24c18350399a936ab3637079295d\
    76c417776b94efce3a0ef7206b15110519655c956cbd8b2489405ee2b09a6b6eebe0c53790a12a8998378b33a5b71159\
    625f4ba49d2a2fdba59fbf0897bc7aabd8d707dc140a80f0f309f835d3da54ab584e501dfa0ee977fec543f74186a802\
    b9a37adb3e8291eca04d66520d229e60401e7282bef486ae059aa70696e0e305d777140a7a883ecdcb69b9ff938e8a42\
    31864c69ca2c2043bed007ff3e605e014bcf518138dc3a25c5e236171a2d01d6";
const V7_PT: &str = "\
    8e41b78c390b5af9d758bb214a67e9f6bf7727b09ac6124084c37611398fa45daad94868600ed391fb1acd4857a95b46\
    6e62ef9f4b377244d1c152e7b30d731aad30c716d214b707aed99eb5b5e580b3e887cf7497465651d4b60e6042051da3\
    693c3b78c14489543be8b6ad0ba629565bba202313ba7b0d0c94a3252b676f46cc02ce0f8a7d34c0ed229129673c1f61\
    aed579d08a9203a25aac3a77e9db60267996db38df637356d9dcd1632e369939f2a29d89345c66e05066f1a3677aef18\
    dea4113faeb629e46721a66d0a7e785d3e29af2594eb67dfa982affe0aac058f6e15864269b135418261fc3afb089472\
    cf68c45dd7f231c6249ba0255e1e033833fc4d00a3fe02132d7bc3873614b8aee34273581ea0325c81f0270affa13641\
    d052d36f0757d484014354d02d6883ca15c24d8c3956b1bd027bcf41f151fd8023c5340e5606f37e90fdb87c86fb4fa6\
    34b3718a30bace06a66eaf8f63c4aa3b637826a87fe8cfa44282e92cb1615af3a28e53bc74c7cba1a0977be9065d0c1a\
    5dec6c54ae38d37f37aa35283e048e5530a85c4e7a29d7b92ec0c3169cdf2a805c7604bce60049b9fb7b8eaac10f51ae\
    23794ceba68bb58112e293b9b692ca721b37c662f8574ed4dba6f88e170881c82cddc1034a0ca7e284bf0962b6b26292\
    d836fa9f73c1ac770eef0f2d3a1eaf61d3e03555fd424eedd67e18a18094f888";
const V7_CT: &str = "\
    d55f684f81f4426e9fde92a5ff02df2ac896af63962888a97910c1379e20b0a3b1db613fb7fe2e07004329ea5c22bfd3\
    3e3dbe4cf58cc608c2c26c19a2e2fe22f98732c2b5cb844cc6c0702d91e1d50fc4382a7eba5635cd602432a2306ac4ce\
    82f8d70c8d9bc15f918fe71e74c622d5cf71178bf6e0b9cc9f2b41dd8dbe441c41cd0c73a6dc47a348f6702f9d0e9b1b\
    1431e948e299b9ec2272ab2c5f0c7be86affa5dec87a0bee81d3d50007edaa2bcfccb35605155ff36ed8edd4a40dcd4b\
    243acd11b2b987bdbfaf91a7cac27e9c5aea525ee53de7b2d3332c8644402b823e94a7db26276d2d23aa07180f76b4fd\
    29b9c0823099c9d62c519880aee7e9697617c1497d47bf3e571950311421b6b734d38b0db91eb85331b91ea9f61530f5\
    4512a5a52a4bad589eb69781d537f23297bb459bdad2948a29e1550bf4787e0be95bb173cf5fab17dab7a13a052a6345\
    3d97ccec1a321954886b7a1299faaeecae35c6eaaca753b041b5e5f093bf83397fd21dd6b3012066fcc058cc32c3b09d\
    7562dee29509b5839392c9ff05f51f3166aaac4ac5f238038a3045e6f72e48ef0fe8bc675e82c318a268e43970271bf1\
    19b81bf6a982746554f84e72b9f00280a320a08142923c23c883423ff949827f29bbacdc1ccdb04938ce6098c95ba6b3\
    2528f4ef78eed778b2e122ddfd1cbdd11d1c0a6783e011fc536d63d053260637";
const V8_CT: &str = "\
    72efc1ebfe1ee25975a6eb3aa8589dda2b261f1c85bdab442a9e5b2dd1d7c3957a16fc08e526d4b1223f1b1232a11af2\
    74c3d70dac57f83e0983c498f1a6f1aecb021c3e70085a1e527f1ce41ee5911a82020161529cd82773762daf5459de94\
    a0a82adae7e1703c808543c29ed6fb32d9e004327c1355180c995a07741493a09c21ba01a387882da4f62534b87bb15d\
    60d197201c0fd3bf30c1500a3ecfecdd66d8721f90bcc4c17ee925c61b0a03727a9c0d5f5ca462fbfa0af1c2513a9d9d\
    4b5345bd27a5f6e653f751693e6b6a2b8ead57d511e00e58c45b7b8d005af79288f5c7c22fd4f1bf7a898b03a5634c6a\
    1ae3f9fae5de4f296a2896b23e7ed43ed14fa5a2803f4d28f0d3ffcf24757677aebdb47bb388378708948a8d4126ed18\
    39e0da29a537a8c198b3c66ab00712dd261674bf45a73d67f76914f830ca014b65596f27e4cf62de66125a5566df9975\
    155628b400fbfb3a29040ed50faffdbb18aece7c5c44693260aab386c0a37b11b114f1c415aebb653be468179428d43a\
    4d8bc3ec38813eca30a13cf1bb18d524f1992d44d8b1a42ea30b22e6c95b199d8d182f8840b09d059585c31ad691fa06\
    19ff038aca2c39a943421157361717c49d322028a74648113bd8c9d7ec77cf3c89c1ec8718ceff8516d96b34c3c614f1\
    0699c9abc4ed0411506223bea16af35c883accdbe1104eef0cfdb54e12fb230a";
const V9_CT: &str = "\
    3260ae8dad1f4a32c5cafe3ab0eb95549d461a67ceb9e5aa2d3afb62dece0553193ba50c75be251e08d1d08f1088576c\
    7efdfaaf3f459559571e12511753b07af073f35da06af0ce0bbf6b8f5ccc5cea500ec1b211bd51f63b606bf6528796ca\
    12173ba39b8935ee44ccce646f90a45bf9ccc567f0ace13dc2d53ebeedc81f58b2e41179dddf0d5a5c42f5d8506c1a5d\
    2f8f59f3ea873cbcd0eec19acbf325423bd3dcb8c2b1bf1d1eaed0eba7f0698e4314fbeb2f1566d1b9253008cbccf45a\
    2b0d9c5c9c21474f4076e02be26050b99dee4fd68a4cf890e496e4fcae7b70f94ea5a9062da0daeba1993d2ccd1dd3c2\
    44b8428801495a58b216547e7e847c46d1d756377b6242d2e5fb83bf752b54e0df71e889f3a2bb0f4c10805bf3c59037\
    6e3c24e22ff57f7fa965577375325cea5d920db94b9c336b455f6e894c01866fe9fbb8c8d3f70a2957285f6dfb5dcd8c\
    bf54782f8fe7766d4723819913ac773421e3a31095866bad22c86a6036b2518b2059b4229d18c8c2ccbdf906c6cc6e82\
    464ee57bddb0bebcb1dc645325bfb3e665ef7251082c88ebb1cf203bd779fdd38675713c8daadd17e1cabee432b09787\
    b6ddf3304e38b731b45df5df51b78fcfb3d32466028d0ba36555e7e11ab0ee0666061d1645d962444bc47a38188930a8\
    4b4d561395c73c087021927ca638b7afc8a8679ccb84c26555440ec7f10445cd";
const V10_CT: &str = "\
    1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b5d31e276f8fe4a8d66b317f9ac683f44\
    680a86ac35adfc3345befecb4bb188fd5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0\
    c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca2a3e7a7d7df7b10355165c8b9a6d0a7d\
    e8b062c4500dc4cd120c0f7418dae3d0b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f\
    93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec583e9645e07b8d9670655ba5bbcfecc6\
    dc3966380ad8fecb17b6ba02469a020a84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1\
    505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae9be69a2ffeceb1bec9de244fbe15992b\
    11b77c040f12bd8f6a975a44a0f90c29a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac\
    6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f645e8b7e9bfdef33943054ff84011493\
    c27b3429eaedb4ed5376441a77ed43851ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa\
    773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151";
const V11_CT: &str = "\
    77a31251618a15e6b92d1d66dffe7b50b50bad552305ba0217a610688eff7e11e1d0225438e093242d6db274fde801d4\
    cae06f2092c728b2478559df58e837c2469ee4a4fa794e4bbc7f39bc026e3cb72c33b0888f25b4acf56a2a9804f1ce6d\
    3d6e1dc6ca181d4b546179d55544aa7760c40d06741539c7e3cd9d2f6650b2013fd0eeb8c2b8e3d8d240ccae2d4c9832\
    0a7442e1c8d75a42d6e6cfa4c2eca1798d158c7aecdf82490f24bb9b38e108bcda12c3faf9a21141c3613b58367f922a\
    aa26cd22f23d708dae699ad7cb40a8ad0b6e2784973dcb605684c08b8d6998c69aac049921871ebb65301a4619ca80ec\
    b485a31d744223ce8ddc2394828d6a80470c092f5ba413c3378fa6054255c6f9df4495862bbb3287681f931b687c888a\
    bf844dfc8fc28331e579928cd12bd2390ae123cf03818d14dedde5c0c24c8ab018bfca75ca096f2d531f3d1619e785f1\
    ada437cab92e980558b3dce1474afb75bfedbf8ff54cb2618e0244c9ac0d3c66fb51598cd2db11f9be39791abe447c63\
    094f7c453b7ff87cb5bb36b7c79efb0872d17058b83b15ab0866ad8a58656c5a7e20dbdf308b2461d97c0ec0024a2715\
    055249cf3b478ddd4740de654f75ca686e0d7345c69ed50cdc2a8b332b1f8824108ac937eb050585608ee734097fc090\
    54fbff89eeaeea791f4a7ab1f9868294a4f9e27b42af8100cb9d59cef9645803";
const V14_CT: &str = "\
    64497e5a831e4a932c09be3e5393376daa599548b816031d224bbf50a818ed2350eae7e96087c8a0db51ad290bd00c1a\
    c1620857635bf246c176ab463be30b808da548081ac847b158e1264be25bb0910bbc92647108089415d45fab1b3d2604\
    e8a8eff1ae4020cfa39936b66827b23f371b92200be90251e6d73c5f86de5fd4a950781933d79a28272b782a2ec313ef\
    dfcc0628f43d744c2dc2ff3dcb66999b50c7ca895b0c64791eeaa5f29499fb1c026f84ce5b5c72ba1083cddb5ce45434\
    631665c333b60b11593fb253c5179a2c8db813782a004856a1653011e93fb6d876c18366dd8683f53412c0c180f9c848\
    592d593f8609ca736317d356e13e2bff3a9f59cd9aeb19cd482593d8c46128bb32423b37a9adfb482b99453fbe25a41b\
    f6feb4aa0bef5ed24bf73c762978025482c13115e4015aac992e5613a3b5c2f685b84795cb6e9b2656d8c88157e52c42\
    f978d8634c43d06fea928f2822e465aa6576e9bf419384506cc3ce3c54ac1a6f67dc66f3b30191e698380bc999b05abc\
    e19dc0c6dcc2dd001ec535ba18deb2df1a101023108318c75dc98611a09dc48a0acdec676fabdf222f07e026f059b672\
    b56e5cbc8e1d21bbd867dd927212054681d70ea737134cdfce93b6f82ae22423274e58a0821cc5502e2d0ab4585e94de\
    6975be5e0b4efce51cd3e70c25a1fbbbd609d273ad5b0d59631c531f6a0a57b9";

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
}

fn cipher(key: &str) -> Cipher {
    Cipher::new(&MasterKey::from_bytes(&hex(key)).unwrap())
}

fn sector(text: &str) -> [u8; SECTOR_SIZE] {
    hex(text).try_into().unwrap()
}

/// Vectors 4 and 10-14 encrypt bytes 0..=255 twice.
fn counting() -> [u8; SECTOR_SIZE] {
    std::array::from_fn(|i| i as u8)
}

/// Encrypts `plain` as sector `number`, checks it against `expected`,
/// and decrypts it back.
fn check_vector(cipher: &Cipher, number: u64, plain: [u8; SECTOR_SIZE], expected: &str) {
    let mut data = [plain];
    cipher.encrypt_sectors(number, &mut data);
    assert!(data[0] == sector(expected), "sector {number:#x}: ciphertext differs from the vector");
    cipher.decrypt_sectors(number, &mut data);
    assert!(data[0] == plain, "sector {number:#x}: decryption does not give the plaintext back");
}

#[test]
fn aes_128_vectors_4_to_9_each_encrypt_and_decrypt_as_one_sector() {
    let c = cipher(KEY_128);
    check_vector(&c, 0, counting(), V4_CT);
    check_vector(&c, 1, sector(V4_CT), V5_CT);
    check_vector(&c, 2, sector(V5_CT), V6_CT);
    check_vector(&c, 0xfd, sector(V7_PT), V7_CT);
    check_vector(&c, 0xfe, sector(V7_CT), V8_CT);
    check_vector(&c, 0xff, sector(V8_CT), V9_CT);
}

#[test]
fn aes_256_vectors_10_11_and_14_encrypt_and_decrypt_with_sector_numbers_up_to_40_bits() {
    let c = cipher(KEY_256);
    check_vector(&c, 0xff, counting(), V10_CT);
    check_vector(&c, 0xffff, counting(), V11_CT);
    check_vector(&c, 0xff_ffff_ffff, counting(), V14_CT);
}

#[test]
fn a_run_of_sectors_numbers_them_consecutively_from_the_first() {
    let c = cipher(KEY_128);
    let mut run = [counting(), sector(V4_CT), sector(V5_CT)];
    c.encrypt_sectors(0, &mut run);
    assert!(run == [sector(V4_CT), sector(V5_CT), sector(V6_CT)], "vectors 4-6 as one run from sector 0");
    c.decrypt_sectors(0, &mut run);
    assert!(run == [counting(), sector(V4_CT), sector(V5_CT)]);

    let mut run = [sector(V7_PT), sector(V7_CT), sector(V8_CT)];
    c.encrypt_sectors(0xfd, &mut run);
    assert!(run == [sector(V7_CT), sector(V8_CT), sector(V9_CT)], "vectors 7-9 as one run from sector 0xfd");
}

/// Puts `plain` in sector `number % 8` of the block holding it, encrypts
/// the block through the block API, and compares that sector.
fn check_in_block(cipher: &Cipher, number: u64, plain: [u8; SECTOR_SIZE], expected: &str) {
    let block = number / 8;
    let at = (number % 8) as usize * SECTOR_SIZE;
    let mut data = [0x5au8; BLOCK_SIZE];
    data[at..at + SECTOR_SIZE].copy_from_slice(&plain);
    let original = data;
    cipher.encrypt_block(block, &mut data);
    assert!(data[at..at + SECTOR_SIZE] == sector(expected), "sector {number:#x} in block {block:#x}");
    cipher.decrypt_block(block, &mut data);
    assert!(data == original, "block {block:#x} does not decrypt back");
}

#[test]
fn a_4k_block_is_eight_sectors_numbered_from_eight_times_the_block() {
    let c = cipher(KEY_128);
    check_in_block(&c, 0, counting(), V4_CT);
    check_in_block(&c, 1, sector(V4_CT), V5_CT);
    check_in_block(&c, 2, sector(V5_CT), V6_CT);
    check_in_block(&c, 0xfd, sector(V7_PT), V7_CT);
    check_in_block(&c, 0xff, sector(V8_CT), V9_CT);
    let c = cipher(KEY_256);
    check_in_block(&c, 0xff, counting(), V10_CT);
    check_in_block(&c, 0xffff, counting(), V11_CT);
    check_in_block(&c, 0xff_ffff_ffff, counting(), V14_CT);
}

#[test]
fn keys_other_than_32_or_64_bytes_are_refused() {
    for len in [0, 16, 31, 33, 48, 63, 65, 128] {
        let err = MasterKey::from_bytes(&vec![1; len]).unwrap_err();
        assert_eq!(err.len, len);
        assert!(err.to_string().contains(&len.to_string()));
    }
}
